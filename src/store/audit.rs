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

/// An [`AuditStamp`] for a change across accounts (a sweep's batch): each row it stamps
/// names its own account.
#[derive(Debug, Clone)]
pub struct BatchStamp {
    pub actor: String,
    pub job_id: Uuid,
    pub at: DateTime<Utc>,
}

impl BatchStamp {
    pub fn in_account(&self, account_id: i64) -> AuditStamp {
        AuditStamp {
            account_id,
            actor: self.actor.clone(),
            job_id: self.job_id,
            at: self.at,
        }
    }
}

/// One changed row of [`record_changed_across`]: its account, its id, its detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub account_id: i64,
    pub entity_id: i64,
    pub detail: String,
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
    let changed: Vec<Changed> = changed
        .iter()
        .map(|(id, detail)| Changed {
            account_id: stamp.account_id,
            entity_id: *id,
            detail: detail.clone(),
        })
        .collect();
    let batch = BatchStamp {
        actor: stamp.actor.clone(),
        job_id: stamp.job_id,
        at: stamp.at,
    };
    record_changed_across(tx, &batch, entity, action, &changed).await
}

/// [`record_changed`] for rows of many accounts, each audited in its own.
pub async fn record_changed_across(
    tx: &mut Tx,
    stamp: &BatchStamp,
    entity: &str,
    action: &str,
    changed: &[Changed],
) -> Result<u64, StoreError> {
    if changed.is_empty() {
        return Ok(0);
    }
    match tx {
        // One statement whatever the count: a salesperson may hold thousands of contacts.
        Tx::Postgres(tx) => {
            let column = |f: fn(&Changed) -> i64| changed.iter().map(f).collect::<Vec<i64>>();
            let details: Vec<&str> = changed.iter().map(|row| row.detail.as_str()).collect();
            sqlx::query(
                "INSERT INTO audit_log (account_id, actor, job_id, entity, entity_id, action,
                                        detail, at)
                 SELECT changed.account_id, $1, $2, $3, changed.id, $4, changed.detail, $5
                   FROM UNNEST($6::int8[], $7::int8[], $8::text[]) WITH ORDINALITY
                        AS changed (account_id, id, detail, position)
                  ORDER BY changed.position",
            )
            .bind(stamp.actor.as_str())
            .bind(stamp.job_id)
            .bind(entity)
            .bind(action)
            .bind(stamp.at)
            .bind(column(|row| row.account_id))
            .bind(column(|row| row.entity_id))
            .bind(details)
            .execute(&mut **tx)
            .await?;
        }
        // In process: a statement per row costs no round trip.
        Tx::Sqlite(_) => {
            for row in changed {
                let stamp = stamp.in_account(row.account_id);
                record(tx, &stamp, entity, row.entity_id, action, &row.detail).await?;
            }
        }
    }
    Ok(changed.len() as u64)
}

/// Rows of the audit log, oldest first, for tests, the CLI and the demo.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub account_id: i64,
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
        "SELECT id, account_id, actor, job_id, entity, entity_id, action, detail FROM audit_log
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
        "SELECT id, account_id, actor, job_id, entity, entity_id, action, detail FROM audit_log
          WHERE job_id = $1 AND id > $2 ORDER BY id",
        job_id,
        after_id
    )
}

/// The id of the last audit row (0 when there is none).
pub async fn last_id(tx: &mut Tx) -> Result<i64, StoreError> {
    super::fetch_scalar!(tx, "SELECT COALESCE(MAX(id), 0) FROM audit_log")
}
