//! `lifecycle schedule`: each sweep's expression, zone, next firing and last run (read by
//! [`lifecycle::schedule::status`], which the dashboard's overview shows too).

use chrono::{DateTime, Utc};
use lifecycle::App;
use lifecycle::schedule::Schedules;
use lifecycle::schedule::status::{LastRun, sweep_statuses};

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
    for status in sweep_statuses(&app.store, &schedules, now).await? {
        rows.push([
            status.sweep.to_string(),
            status
                .expression
                .unwrap_or_else(|| "(disabled)".to_string()),
            status.zone,
            status.next_firing.unwrap_or_else(|| "-".to_string()),
            status
                .last_run
                .map_or_else(|| "never".to_string(), |last| last_run(&last)),
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

/// `tick 2026-03-29 03:00:00 +02:00: done, 3 licenses released (job <id>)`, or
/// `tick 2026-03-29 03:00:00 +02:00: skipped (first start)`.
fn last_run(last: &LastRun) -> String {
    let outcome = last.outcome.as_deref().unwrap_or("-");
    // A tick skipped (a schedule's first start) enqueued nothing: no job to show.
    if last.job_id.is_none() {
        return format!("tick {}: {outcome}", last.tick);
    }
    let job = last
        .job_id
        .map_or_else(|| "-".to_string(), |id| id.to_string());
    format!("tick {}: {}, {outcome} (job {job})", last.tick, last.state)
}
