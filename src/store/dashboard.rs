//! The dashboard overview's reads. The jobs list, a job's page and a user's history read
//! through the operator's queries (`store::admin`), as the CLI does.

use super::{Store, StoreError, fetch_all, fetch_optional};

/// How many jobs of a kind are in a state. `state` is the ledger's, refined: a queued job
/// waiting for a later time is `scheduled`, or `retrying` if an attempt already failed.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct KindStateCount {
    pub kind: String,
    pub state: String,
    pub jobs: i64,
}

pub async fn counts_by_kind_and_state(
    store: &Store,
    now_ms: i64,
) -> Result<Vec<KindStateCount>, StoreError> {
    let mut tx = store.begin_read().await?;
    let rows = fetch_all!(
        &mut tx,
        KindStateCount,
        "SELECT kind, shown_state AS state, COUNT(*) AS jobs FROM (
             SELECT kind,
                    CASE WHEN state = 'queued' AND run_at_ms > $1 AND attempts > 0 THEN 'retrying'
                         WHEN state = 'queued' AND run_at_ms > $1 THEN 'scheduled'
                         ELSE state END AS shown_state
               FROM jobs) AS refined
          GROUP BY kind, shown_state ORDER BY kind, shown_state",
        now_ms
    )?;
    tx.commit().await?;
    Ok(rows)
}

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
