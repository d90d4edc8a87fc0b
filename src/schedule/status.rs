//! What `lifecycle schedule` and the dashboard's overview show of each sweep: its
//! expression, zone, next firing and last run, as text in the sweep's own zone. One reading,
//! two renderings (a table on the terminal, a table in a page).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use uuid::Uuid;

use super::Schedules;
use crate::store::schedule::{FiringRow, last_firing};
use crate::store::{Store, StoreError};

/// One sweep as of an instant.
#[derive(Clone, Debug, Serialize)]
pub struct SweepStatus {
    /// Its name in `[schedule.<name>]`.
    pub sweep: &'static str,
    /// The cron expression; `None` when the sweep is disabled (a blank expression).
    pub expression: Option<String>,
    pub zone: String,
    /// The next firing, in the sweep's zone; `None` when disabled.
    pub next_firing: Option<String>,
    pub last_run: Option<LastRun>,
}

/// The latest tick fired and what its job did.
#[derive(Clone, Debug, Serialize)]
pub struct LastRun {
    /// The tick, in the sweep's zone.
    pub tick: String,
    /// The job's state; `pruned` once the finished job left the ledger.
    pub state: String,
    /// The sweep's own summary (`3 licenses released`), once it finished.
    pub outcome: Option<String>,
    pub rows_changed: Option<i64>,
    pub job_id: Option<Uuid>,
}

/// Every scheduled sweep's status as of `now`, in the order of [`super::SWEEPS`].
pub async fn sweep_statuses(
    store: &Store,
    schedules: &Schedules,
    now: DateTime<Utc>,
) -> Result<Vec<SweepStatus>, StoreError> {
    let mut statuses = Vec::with_capacity(schedules.schedules.len());
    for schedule in &schedules.schedules {
        let last = last_firing(store, schedule.sweep.name).await?;
        statuses.push(SweepStatus {
            sweep: schedule.sweep.name,
            expression: schedule.is_enabled().then(|| schedule.expression.clone()),
            zone: schedule.zone.name().to_string(),
            next_firing: schedule
                .next_tick(now)
                .map(|tick| in_zone(tick, schedule.zone)),
            last_run: last.map(|row| last_run(schedule.zone, row)),
        });
    }
    Ok(statuses)
}

fn last_run(zone: Tz, row: FiringRow) -> LastRun {
    LastRun {
        tick: DateTime::<Utc>::from_timestamp_millis(row.tick_at_ms)
            .map_or_else(|| row.tick_at_ms.to_string(), |tick| in_zone(tick, zone)),
        state: row.job_state.unwrap_or_else(|| "pruned".to_string()),
        outcome: row.outcome,
        rows_changed: row.rows_changed,
        job_id: row.job_id,
    }
}

/// `2026-03-29 03:00:00 +02:00`.
pub fn in_zone(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}
