//! The overview (`/admin`): jobs by kind and state (on a big ledger as last counted in the
//! background, with its time: see `crate::job_counts`), live worker processes, the oldest
//! job waiting, each job kind with its Pause/Resume button, the sweeps' schedules and last runs
//! (as `lifecycle schedule` shows them), and the accounts held by the idle-lock breaker.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::session::Signed;
use super::view::{duration, operator, shown};
use super::{AdminError, render};
use crate::App;
use crate::handlers::sweep::SweepKind;
use crate::schedule::Schedules;
use crate::schedule::status::sweep_statuses;
use crate::store::{admin, dashboard, sweeps, workers};

/// What the last action on this page did, shown once after its redirect.
#[derive(Deserialize)]
pub struct OverviewQuery {
    paused: Option<String>,
    resumed: Option<String>,
    confirmed: Option<i64>,
}

pub async fn overview(
    State(app): State<Arc<App>>,
    signed: Signed,
    Query(query): Query<OverviewQuery>,
) -> Result<impl IntoResponse, AdminError> {
    let now_ms = app.clock.now_ms();
    let (counts, counted_now) = app.job_counts.for_overview(&app.store, now_ms).await?;
    let oldest = dashboard::oldest_queued_at_ms(&app.store, now_ms).await?;
    // Liveness is about real time, as the heartbeats are (wall clock, not the job clock).
    let wall_ms = chrono::Utc::now().timestamp_millis();
    let timeout_ms = app.settings.queue.heartbeat_timeout_secs as i64 * 1000;
    let processes = workers::live(&app.store, wall_ms - timeout_ms).await?;
    let states = ["queued", "scheduled", "running", "retrying", "dead", "done"];
    let mut kinds: Vec<String> = counts.rows.iter().map(|row| row.kind.clone()).collect();
    kinds.dedup();
    let table: Vec<_> = kinds
        .iter()
        .map(|kind| {
            let cells: Vec<i64> = states
                .iter()
                .map(|state| {
                    counts
                        .rows
                        .iter()
                        .find(|row| &row.kind == kind && row.state == *state)
                        .map_or(0, |row| row.jobs)
                })
                .collect();
            json!({ "kind": kind, "counts": cells })
        })
        .collect();
    let processes: Vec<_> = processes
        .iter()
        .map(|process| {
            json!({ "host": process.host, "pid": process.pid, "workers": process.workers,
                    "jobs_held": process.jobs_held, "started": super::view::time(process.started_at_ms),
                    "beat_ago": duration(wall_ms - process.last_beat_ms) })
        })
        .collect();
    let paused = admin::paused_kinds(&app.store).await?;
    let job_kinds: Vec<_> = lifecycle_jobs::KINDS
        .iter()
        .map(|(name, _)| json!({ "name": name, "paused": paused.iter().any(|p| p == name) }))
        .collect();
    let schedules = Schedules::from_settings(&app.settings.schedule)?;
    let sweeps = sweep_statuses(&app.store, &schedules, app.clock.now()).await?;
    let holds: Vec<_> = sweeps::open_holds(&app.store, SweepKind::LockIdle.as_str())
        .await?
        .iter()
        .map(|hold| {
            json!({ "account_id": hold.account_id, "held_at": shown(hold.held_at),
                    "would_lock": hold.would_lock, "active_users": hold.active_users,
                    "percent": format!("{:.0}", hold.share * 100.0) })
        })
        .collect();
    Ok(render(
        "overview.html",
        context! { operator => operator(&signed), states => states, table => table,
        counted_at => (!counted_now).then(|| super::view::time(counts.at_ms)),
        processes => processes, job_kinds => job_kinds, sweeps => sweeps, holds => holds,
        oldest_age => oldest.map(|at| duration(now_ms - at)),
        done => json!({ "paused": query.paused, "resumed": query.resumed,
                        "confirmed": query.confirmed }) },
    ))
}
