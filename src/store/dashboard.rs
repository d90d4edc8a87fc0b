//! The dashboard overview's reads. Its counts, the jobs list, a job's page and a user's
//! history read through the operator's queries (`store::admin`), as the CLI does.

use super::{Store, StoreError, fetch_optional};

/// When the oldest job due now was recorded (ms), if any job waits.
pub async fn oldest_queued_at_ms(store: &Store, now_ms: i64) -> Result<Option<i64>, StoreError> {
    let mut tx = store.begin_read().await?;
    let oldest: Option<(Option<i64>,)> = fetch_optional!(
        &mut tx,
        (Option<i64>,),
        "SELECT MIN(created_at_ms) FROM jobs WHERE state = 'queued' AND run_at_ms <= $1",
        now_ms
    )?;
    tx.commit().await?;
    Ok(oldest.and_then(|(at,)| at))
}
