//! `lifecycle schedule`: each sweep's expression, zone, next firing and last run.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lifecycle::App;
use lifecycle::schedule::{Schedule, Schedules};
use lifecycle::store::schedule::{FiringRow, last_firing};

/// The table `lifecycle schedule` prints, as of `now`.
pub async fn table(app: &App, now: DateTime<Utc>) -> anyhow::Result<String> {
    let schedules = Schedules::from_settings(&app.settings.schedule)?;
    let mut rows = vec![[
        "SWEEP".to_string(),
        "CRON".to_string(),
        "ZONE".to_string(),
        "NEXT FIRING".to_string(),
        "LAST RUN".to_string(),
    ]];
    for schedule in &schedules.schedules {
        let last = last_firing(&app.store, schedule.sweep.name).await?;
        rows.push([
            schedule.sweep.name.to_string(),
            if schedule.is_enabled() {
                schedule.expression.clone()
            } else {
                "(disabled)".to_string()
            },
            schedule.zone.name().to_string(),
            schedule
                .next_tick(now)
                .map_or_else(|| "-".to_string(), |tick| in_zone(tick, schedule.zone)),
            last.map_or_else(|| "never".to_string(), |last| last_run(schedule, &last)),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in &rows {
        for (cell, width) in row.iter().zip(&widths) {
            text.push_str(&format!("{cell:<width$}  "));
        }
        text.push_str(&row[4]);
        text.push('\n');
    }
    text.push_str(&format!(
        "a tick missed while every worker was down runs once, late, within {} s (schedule.max_lateness_secs)\n",
        schedules.max_lateness.num_seconds()
    ));
    Ok(text)
}

fn in_zone(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// `tick 2026-03-29 03:00:00 +02:00: done, 3 licenses released (job <id>)`, or
/// `tick 2026-03-29 03:00:00 +02:00: skipped (first start)`.
fn last_run(schedule: &Schedule, last: &FiringRow) -> String {
    let tick = DateTime::<Utc>::from_timestamp_millis(last.tick_at_ms).map_or_else(
        || last.tick_at_ms.to_string(),
        |tick| in_zone(tick, schedule.zone),
    );
    let outcome = last.outcome.as_deref().unwrap_or("-");
    // A tick skipped (a schedule's first start) enqueued nothing: no job to show.
    if last.job_id.is_none() {
        return format!("tick {tick}: {outcome}");
    }
    let state = last.job_state.as_deref().unwrap_or("pruned");
    let job = last
        .job_id
        .map_or_else(|| "-".to_string(), |id| id.to_string());
    format!("tick {tick}: {state}, {outcome} (job {job})")
}
