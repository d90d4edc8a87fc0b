//! The `applied_jobs` marks: written in the transaction that applies a job's effects, so a
//! delivery of a job already applied is recognized and does nothing twice.

use uuid::Uuid;

use crate::store::{StoreError, Tx, execute, fetch_scalar};

/// Whether the effects of `job_id` were already committed.
pub async fn already_applied(tx: &mut Tx, job_id: Uuid) -> Result<bool, StoreError> {
    let count: i64 = fetch_scalar!(
        tx,
        "SELECT COUNT(*) FROM applied_jobs WHERE job_id = $1",
        job_id
    )?;
    Ok(count > 0)
}

/// Marks the effects of `job_id` as applied, in the transaction that applies them.
pub async fn mark_applied(
    tx: &mut Tx,
    job_id: Uuid,
    kind: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "INSERT INTO applied_jobs (job_id, kind, applied_at) VALUES ($1, $2, $3)",
        job_id,
        kind,
        at
    )?;
    Ok(())
}
