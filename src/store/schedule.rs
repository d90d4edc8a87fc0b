//! The firings of the schedule: one row per (schedule, scheduled tick), its primary key the
//! guarantee that a tick fires once across every worker process.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError, Tx, execute, fetch_all, fetch_optional, fetch_scalar};

/// A firing and what its sweep reported, with its job's state when the job is still in the
/// ledger.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct FiringRow {
    pub schedule: String,
    pub tick_at_ms: i64,
    pub job_id: Option<Uuid>,
    pub fired_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub rows_changed: Option<i64>,
    pub outcome: Option<String>,
    /// `None` once the job was pruned from the ledger.
    pub job_state: Option<String>,
}

/// Claims the tick `tick_at_ms` of `schedule`: `true` when this transaction wrote its row,
/// `false` when another already had (on PostgreSQL a concurrent claim waits for the other
/// transaction and then finds the row). The caller enqueues the sweep in the same
/// transaction only when it won.
pub async fn claim_tick(
    tx: &mut Tx,
    schedule: &str,
    tick_at_ms: i64,
    fired_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let inserted = execute!(
        tx,
        "INSERT INTO schedule_firings (schedule, tick_at_ms, fired_at) VALUES ($1, $2, $3)
         ON CONFLICT (schedule, tick_at_ms) DO NOTHING",
        schedule,
        tick_at_ms,
        fired_at
    )?;
    Ok(inserted == 1)
}

/// Whether `schedule` has any firing recorded (fired, or a tick skipped): a schedule with
/// none has never run on this database.
pub async fn has_fired(tx: &mut Tx, schedule: &str) -> Result<bool, StoreError> {
    let fired: i64 = fetch_scalar!(
        tx,
        "SELECT COUNT(*) FROM (SELECT 1 FROM schedule_firings WHERE schedule = $1 LIMIT 1) f",
        schedule
    )?;
    Ok(fired > 0)
}

/// Records a claimed tick as skipped, with why, enqueuing nothing: it changed no rows.
pub async fn set_skipped(
    tx: &mut Tx,
    schedule: &str,
    tick_at_ms: i64,
    outcome: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "UPDATE schedule_firings SET outcome = $3, rows_changed = 0, finished_at = $4
          WHERE schedule = $1 AND tick_at_ms = $2",
        schedule,
        tick_at_ms,
        outcome,
        at
    )?;
    Ok(())
}

/// Names the job a claimed tick enqueued.
pub async fn set_job(
    tx: &mut Tx,
    schedule: &str,
    tick_at_ms: i64,
    job_id: Uuid,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "UPDATE schedule_firings SET job_id = $3 WHERE schedule = $1 AND tick_at_ms = $2",
        schedule,
        tick_at_ms,
        job_id
    )?;
    Ok(())
}

/// Records what the sweep job `job_id` did, on its firing (none when an operator ran it).
pub async fn record_result(
    store: &Store,
    job_id: Uuid,
    rows_changed: i64,
    outcome: &str,
    finished_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    execute!(
        &mut tx,
        "UPDATE schedule_firings SET rows_changed = $2, outcome = $3, finished_at = $4
          WHERE job_id = $1",
        job_id,
        rows_changed,
        outcome,
        finished_at
    )?;
    tx.commit().await
}

/// Deletes the firings of ticks before `before_ms`, except each sweep's latest (the one a
/// process compares the due tick with, and `lifecycle schedule` shows). Returns how many.
pub async fn prune_before(store: &Store, before_ms: i64) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let deleted = execute!(
        &mut tx,
        "DELETE FROM schedule_firings
          WHERE tick_at_ms < $1
            AND tick_at_ms < (SELECT MAX(latest.tick_at_ms) FROM schedule_firings latest
                               WHERE latest.schedule = schedule_firings.schedule)",
        before_ms
    )?;
    tx.commit().await?;
    Ok(deleted)
}

/// The latest firing of `schedule`, if any.
pub async fn last_firing(store: &Store, schedule: &str) -> Result<Option<FiringRow>, StoreError> {
    let mut tx = store.begin_read().await?;
    let row = fetch_optional!(
        &mut tx,
        FiringRow,
        "SELECT f.schedule, f.tick_at_ms, f.job_id, f.fired_at, f.finished_at, f.rows_changed,
                f.outcome, j.state AS job_state
           FROM schedule_firings f LEFT JOIN jobs j ON j.id = f.job_id
          WHERE f.schedule = $1 ORDER BY f.tick_at_ms DESC LIMIT 1",
        schedule
    )?;
    tx.commit().await?;
    Ok(row)
}

/// What `/metrics` shows of the sweeps, read from the database so that every process shows
/// the same: each schedule's latest finished run, and how many accounts the circuit breaker
/// holds. Both tables are small (a row per tick kept, a row per hold).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepGauges {
    pub last_finished: Vec<(String, DateTime<Utc>)>,
    pub held_accounts: i64,
}

pub async fn sweep_gauges(store: &Store) -> Result<SweepGauges, StoreError> {
    let mut tx = store.begin_read().await?;
    let last_finished = fetch_all!(
        &mut tx,
        (String, DateTime<Utc>),
        "SELECT schedule, MAX(finished_at) FROM schedule_firings
          WHERE finished_at IS NOT NULL GROUP BY schedule"
    )?;
    let held_accounts: i64 = fetch_scalar!(
        &mut tx,
        "SELECT COUNT(*) FROM sweep_holds WHERE confirmed_at IS NULL"
    )?;
    tx.commit().await?;
    Ok(SweepGauges {
        last_finished,
        held_accounts,
    })
}
