//! What operators did (`operator_actions`, the audit trail of the dashboard and the CLI),
//! the kinds they paused, and discarding a job.

use uuid::Uuid;

use super::{Value, fetch_rows};
use crate::store::{Store, StoreError, Tx, execute, fetch_all, fetch_optional};

/// An operator's action, to record.
#[derive(Clone, Debug)]
pub struct NewOperatorAction<'a> {
    pub operator: &'a str,
    /// `retry`, `retry-all`, `discard`, `pause`, `resume`.
    pub action: &'a str,
    /// The jobs acted on (a JSON array of ids), the filter of a bulk action, or the kind.
    pub target: String,
    pub job_count: i64,
    pub reason: Option<&'a str>,
    pub at_ms: i64,
}

/// A recorded operator action.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct OperatorAction {
    pub id: i64,
    pub operator: String,
    pub action: String,
    pub target: String,
    pub job_count: i64,
    pub reason: Option<String>,
    pub at_ms: i64,
}

/// Records `action` in `tx`, so it commits with what it did.
pub async fn record_action(tx: &mut Tx, action: &NewOperatorAction<'_>) -> Result<(), StoreError> {
    execute!(
        tx,
        "INSERT INTO operator_actions (operator, action, target, job_count, reason, at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
        action.operator,
        action.action,
        action.target.as_str(),
        action.job_count,
        action.reason,
        action.at_ms
    )?;
    Ok(())
}

/// The latest `limit` operator actions, newest first.
pub async fn list_actions(store: &Store, limit: i64) -> Result<Vec<OperatorAction>, StoreError> {
    fetch_rows(
        store,
        "SELECT id, operator, action, target, job_count, reason, at_ms FROM operator_actions
          ORDER BY at_ms DESC, id DESC LIMIT $1"
            .to_string(),
        &[Value::Int(limit.max(1))],
    )
    .await
}

/// Gives up on a job waiting to run or dead: `discarded`, final, its attempts kept and the
/// reason in its last error. A running job is left alone (its worker settles it); returns
/// the kind of the job discarded, `None` when it was not.
pub async fn discard(
    tx: &mut Tx,
    job_id: Uuid,
    note: &str,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    let kind: Option<(String,)> = fetch_optional!(
        tx,
        (String,),
        "UPDATE jobs SET state = 'discarded', last_error = $2, finished_at_ms = $3,
                         locked_by = NULL, locked_at_ms = NULL
          WHERE id = $1 AND state IN ('queued', 'dead')
          RETURNING kind",
        job_id,
        note,
        now_ms
    )?;
    Ok(kind.map(|(kind,)| kind))
}

/// Pauses `kind`: workers start none of its jobs until it is resumed. Returns whether it
/// was running (false: already paused).
pub async fn pause_kind(
    tx: &mut Tx,
    kind: &str,
    operator: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let inserted = execute!(
        tx,
        "INSERT INTO paused_kinds (kind, paused_by, paused_at_ms) VALUES ($1, $2, $3)
         ON CONFLICT (kind) DO NOTHING",
        kind,
        operator,
        now_ms
    )?;
    Ok(inserted == 1)
}

/// Resumes `kind`; returns whether it was paused.
pub async fn resume_kind(tx: &mut Tx, kind: &str) -> Result<bool, StoreError> {
    Ok(execute!(tx, "DELETE FROM paused_kinds WHERE kind = $1", kind)? == 1)
}

/// The kinds paused now.
pub async fn paused_kinds(store: &Store) -> Result<Vec<String>, StoreError> {
    let mut tx = store.begin_read().await?;
    let kinds: Vec<(String,)> = fetch_all!(
        &mut tx,
        (String,),
        "SELECT kind FROM paused_kinds ORDER BY kind"
    )?;
    tx.commit().await?;
    Ok(kinds.into_iter().map(|(kind,)| kind).collect())
}

/// Whether `kind` is paused now (read from the table, not a cache).
pub async fn is_paused(store: &Store, kind: &str) -> Result<bool, StoreError> {
    Ok(paused_kinds(store)
        .await?
        .iter()
        .any(|paused| paused == kind))
}
