//! Putting jobs back in the queue: claims a dead or hung worker left, the claims of a
//! stopping process, and an operator's retry. Each attempt cut short is recorded with why.

use uuid::Uuid;

use super::ClaimedJob;
use crate::store::{Dialect, Store, StoreError, Tx, execute, fetch_all, fetch_optional};

/// A claim being put back: the row as it was held.
#[derive(Debug, Clone, sqlx::FromRow)]
struct HeldRow {
    id: Uuid,
    attempts: i32,
    locked_by: Option<String>,
}

/// Puts back the jobs held past the visibility timeout (claimed before `stale_before_ms`:
/// their worker died or hung), recording for each attempt why it ended.
/// `pushed_at_ms` as in [`super::settle_many`]. Returns how many.
pub async fn requeue_stale(
    store: &Store,
    stale_before_ms: i64,
    visibility_timeout_secs: u64,
    now_ms: i64,
    pushed_at_ms: Option<i64>,
) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let sql = lock_held("locked_at_ms < $1", tx.dialect());
    let held = fetch_all!(&mut tx, HeldRow, sqlx::AssertSqlSafe(sql), stale_before_ms)?;
    let requeued = put_back(&mut tx, &held, now_ms, pushed_at_ms, |locked_by| {
        format!(
            "not finished within the visibility timeout ({visibility_timeout_secs} s) by {locked_by}; put back"
        )
    })
    .await?;
    tx.commit().await?;
    Ok(requeued)
}

/// Puts back, in `tx`, every job held by a consumer whose name starts with `prefix` (the
/// consumers of one process), recording `reason` as how each attempt ended.
pub async fn requeue_held_by(
    tx: &mut Tx,
    prefix: &str,
    reason: &str,
    now_ms: i64,
    pushed_at_ms: Option<i64>,
) -> Result<u64, StoreError> {
    let sql = lock_held("substr(locked_by, 1, length($1)) = $1", tx.dialect());
    let held = fetch_all!(&mut *tx, HeldRow, sqlx::AssertSqlSafe(sql), prefix)?;
    put_back(tx, &held, now_ms, pushed_at_ms, |locked_by| {
        format!("{reason} (held by {locked_by}); put back")
    })
    .await
}

/// The running rows matching `condition` (over `$1`), locked on PostgreSQL so that a
/// worker settling one meanwhile is waited for and the row re-read.
fn lock_held(condition: &str, dialect: Dialect) -> String {
    let lock = match dialect {
        Dialect::Postgres => " FOR UPDATE",
        Dialect::Sqlite => "",
    };
    format!(
        "SELECT id, attempts, locked_by FROM jobs WHERE state = 'running' AND {condition}{lock}"
    )
}

/// Queues `held` again, each attempt's end recorded with the reason `reason_of` gives for
/// its holder. Returns how many.
async fn put_back(
    tx: &mut Tx,
    held: &[HeldRow],
    now_ms: i64,
    pushed_at_ms: Option<i64>,
    reason_of: impl Fn(&str) -> String,
) -> Result<u64, StoreError> {
    for row in held {
        let reason = reason_of(row.locked_by.as_deref().unwrap_or("an unknown worker"));
        execute!(
            &mut *tx,
            "INSERT INTO job_attempt_errors (job_id, attempt, error, permanent, at_ms)
             VALUES ($1, $2, $3, FALSE, $4)
             ON CONFLICT (job_id, attempt) DO NOTHING",
            row.id,
            row.attempts,
            reason.as_str(),
            now_ms
        )?;
        execute!(
            &mut *tx,
            "UPDATE jobs SET state = 'queued', locked_by = NULL, locked_at_ms = NULL,
                             pushed_at_ms = $2, last_error = $3
              WHERE id = $1",
            row.id,
            pushed_at_ms,
            reason.as_str()
        )?;
    }
    Ok(held.len() as u64)
}

/// Queues a job again for `now_ms`, whatever its state; its attempts and errors stay.
/// Returns the job, or `None` when there is no such job.
/// `pushed_at_ms` as in [`super::settle_many`].
pub async fn requeue(
    store: &Store,
    id: Uuid,
    now_ms: i64,
    pushed_at_ms: Option<i64>,
) -> Result<Option<ClaimedJob>, StoreError> {
    let mut tx = store.begin().await?;
    let job = fetch_optional!(
        &mut tx,
        ClaimedJob,
        "UPDATE jobs SET state = 'queued', run_at_ms = $2, locked_by = NULL, locked_at_ms = NULL,
                         finished_at_ms = NULL, pushed_at_ms = $3
          WHERE id = $1
          RETURNING id, kind, payload, attempts, max_attempts, created_at_ms",
        id,
        now_ms,
        pushed_at_ms
    )?;
    tx.commit().await?;
    Ok(job)
}

/// An operator's retry of `ids`, in `tx`: those dead, discarded or waiting for their next
/// attempt are queued for `now_ms`, their attempts and errors kept; the others (running,
/// done, unknown) are left alone. Returns the jobs queued.
/// `pushed_at_ms` as in [`super::settle_many`].
pub async fn requeue_failed(
    tx: &mut Tx,
    ids: &[Uuid],
    now_ms: i64,
    pushed_at_ms: Option<i64>,
) -> Result<Vec<ClaimedJob>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    const SET: &str = "UPDATE jobs SET state = 'queued', run_at_ms = $1, locked_by = NULL,
                         locked_at_ms = NULL, finished_at_ms = NULL, pushed_at_ms = $2";
    const RETRYABLE: &str =
        "(state IN ('dead', 'discarded') OR (state = 'queued' AND attempts > 0))
          RETURNING id, kind, payload, attempts, max_attempts, created_at_ms";
    match tx {
        Tx::Postgres(tx) => Ok(sqlx::query_as::<_, ClaimedJob>(sqlx::AssertSqlSafe(format!(
            "{SET} WHERE id = ANY($3) AND {RETRYABLE}"
        )))
        .bind(now_ms)
        .bind(pushed_at_ms)
        .bind(ids)
        .fetch_all(&mut **tx)
        .await?),
        Tx::Sqlite(tx) => {
            let sql = format!(
                "{SET} WHERE id IN ({}) AND {RETRYABLE}",
                super::placeholders(3, ids.len())
            );
            let mut query = sqlx::query_as::<_, ClaimedJob>(sqlx::AssertSqlSafe(sql))
                .bind(now_ms)
                .bind(pushed_at_ms);
            for id in ids {
                query = query.bind(*id);
            }
            Ok(query.fetch_all(&mut **tx).await?)
        }
    }
}
