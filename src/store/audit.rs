//! The audit log: one row per change, naming the actor and the job.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StoreError, Tx, fetch_scalar};

/// Who made a change and under which job, stamped on every audit row of that job.
#[derive(Debug, Clone)]
pub struct AuditStamp {
    pub account_id: i64,
    pub actor: String,
    pub job_id: Uuid,
    pub at: DateTime<Utc>,
}

impl AuditStamp {
    /// The same stamp for rows that each name their own account.
    pub fn across_accounts(&self) -> BatchStamp {
        BatchStamp {
            actor: self.actor.clone(),
            job_id: self.job_id,
            at: self.at,
        }
    }
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
    insert(tx, stamp, entity, entity_id, action, detail).await?;
    Ok(())
}

/// [`record`], returning the row's id.
async fn insert(
    tx: &mut Tx,
    stamp: &AuditStamp,
    entity: &str,
    entity_id: i64,
    action: &str,
    detail: &str,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO audit_log (account_id, actor, job_id, entity, entity_id, action, detail, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        stamp.account_id,
        stamp.actor.as_str(),
        stamp.job_id,
        entity,
        entity_id,
        action,
        detail,
        stamp.at
    )
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
    let audited =
        record_changed_across(tx, &stamp.across_accounts(), entity, action, &changed).await?;
    Ok(audited.len() as u64)
}

/// An audit row just written by [`record_changed_across`]: its id, and the account and
/// entity it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Audited {
    pub id: i64,
    pub account_id: i64,
    pub entity_id: i64,
}

/// [`record_changed`] for rows of many accounts, each audited in its own. Returns the rows
/// written.
pub async fn record_changed_across(
    tx: &mut Tx,
    stamp: &BatchStamp,
    entity: &str,
    action: &str,
    changed: &[Changed],
) -> Result<Vec<Audited>, StoreError> {
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    match tx {
        // One statement whatever the count: a salesperson may hold thousands of contacts.
        Tx::Postgres(tx) => {
            let column = |f: fn(&Changed) -> i64| changed.iter().map(f).collect::<Vec<i64>>();
            let details: Vec<&str> = changed.iter().map(|row| row.detail.as_str()).collect();
            Ok(sqlx::query_as(
                "INSERT INTO audit_log (account_id, actor, job_id, entity, entity_id, action,
                                        detail, at)
                 SELECT changed.account_id, $1, $2, $3, changed.id, $4, changed.detail, $5
                   FROM UNNEST($6::int8[], $7::int8[], $8::text[]) WITH ORDINALITY
                        AS changed (account_id, id, detail, position)
                  ORDER BY changed.position
                 RETURNING id, account_id, entity_id",
            )
            .bind(stamp.actor.as_str())
            .bind(stamp.job_id)
            .bind(entity)
            .bind(action)
            .bind(stamp.at)
            .bind(column(|row| row.account_id))
            .bind(column(|row| row.entity_id))
            .bind(details)
            .fetch_all(&mut **tx)
            .await?)
        }
        // In process: a statement per row costs no round trip.
        Tx::Sqlite(_) => {
            let mut audited = Vec::with_capacity(changed.len());
            for row in changed {
                let stamp = stamp.in_account(row.account_id);
                let id = insert(tx, &stamp, entity, row.entity_id, action, &row.detail).await?;
                audited.push(Audited {
                    id,
                    account_id: row.account_id,
                    entity_id: row.entity_id,
                });
            }
            Ok(audited)
        }
    }
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
