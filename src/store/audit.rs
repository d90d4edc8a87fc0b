//! The audit log: one row per change, naming the actor and the job.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StoreError, Tx, execute};

/// Who made a change and under which job, stamped on every audit row of that job.
#[derive(Debug, Clone)]
pub struct AuditStamp {
    pub account_id: i64,
    pub actor: String,
    pub job_id: Uuid,
    pub at: DateTime<Utc>,
}

pub async fn record(
    tx: &mut Tx,
    stamp: &AuditStamp,
    entity: &str,
    entity_id: i64,
    action: &str,
    detail: &str,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "INSERT INTO audit_log (account_id, actor, job_id, entity, entity_id, action, detail, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        stamp.account_id,
        stamp.actor.as_str(),
        stamp.job_id,
        entity,
        entity_id,
        action,
        detail,
        stamp.at
    )?;
    Ok(())
}

/// Audits each row a set-based change returned, as `(id, detail)`, in the order given.
/// The change says which rows it touched (`UPDATE .. RETURNING`), so the rows audited are
/// the rows changed, with the predicate written once. Returns how many.
pub async fn record_changed(
    tx: &mut Tx,
    stamp: &AuditStamp,
    entity: &str,
    action: &str,
    changed: &[(i64, String)],
) -> Result<u64, StoreError> {
    if changed.is_empty() {
        return Ok(0);
    }
    match tx {
        // One statement whatever the count: a salesperson may hold thousands of contacts.
        Tx::Postgres(tx) => {
            let (ids, details): (Vec<i64>, Vec<&str>) = changed
                .iter()
                .map(|(id, detail)| (*id, detail.as_str()))
                .unzip();
            sqlx::query(
                "INSERT INTO audit_log (account_id, actor, job_id, entity, entity_id, action,
                                        detail, at)
                 SELECT $1, $2, $3, $4, changed.id, $5, changed.detail, $6
                   FROM UNNEST($7::int8[], $8::text[]) WITH ORDINALITY
                        AS changed (id, detail, position)
                  ORDER BY changed.position",
            )
            .bind(stamp.account_id)
            .bind(stamp.actor.as_str())
            .bind(stamp.job_id)
            .bind(entity)
            .bind(action)
            .bind(stamp.at)
            .bind(ids)
            .bind(details)
            .execute(&mut **tx)
            .await?;
        }
        // In process: a statement per row costs no round trip.
        Tx::Sqlite(_) => {
            for (id, detail) in changed {
                record(tx, stamp, entity, *id, action, detail).await?;
            }
        }
    }
    Ok(changed.len() as u64)
}

/// Rows of the audit log, oldest first, for tests, the CLI and the demo.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub actor: String,
    pub job_id: Option<Uuid>,
    pub entity: String,
    pub entity_id: i64,
    pub action: String,
    pub detail: String,
}

pub async fn for_job(tx: &mut Tx, job_id: Uuid) -> Result<Vec<AuditRow>, StoreError> {
    super::fetch_all!(
        tx,
        AuditRow,
        "SELECT actor, job_id, entity, entity_id, action, detail FROM audit_log
          WHERE job_id = $1 ORDER BY id",
        job_id
    )
}

/// The audit rows of `job_id` after row `after_id`: those of one batch of a job that
/// commits in many transactions.
pub async fn for_job_after(
    tx: &mut Tx,
    job_id: Uuid,
    after_id: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    super::fetch_all!(
        tx,
        AuditRow,
        "SELECT actor, job_id, entity, entity_id, action, detail FROM audit_log
          WHERE job_id = $1 AND id > $2 ORDER BY id",
        job_id,
        after_id
    )
}

/// The id of the last audit row (0 when there is none).
pub async fn last_id(tx: &mut Tx) -> Result<i64, StoreError> {
    super::fetch_scalar!(tx, "SELECT COALESCE(MAX(id), 0) FROM audit_log")
}
