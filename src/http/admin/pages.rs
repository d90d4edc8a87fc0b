//! The pages: thin handlers that read through `store::dashboard` and `store::admin`, act
//! through `queue::admin`, and hand plain values to the templates, which escape them. The
//! overview is here; the jobs list, its bulk actions, a job's page and a user's are in
//! their own files.

pub mod bulk;
mod filter;
pub mod job;
pub mod jobs;
pub mod users;

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use minijinja::context;
use serde_json::json;

use super::session::Signed;
use super::{AdminError, render};
use crate::App;
use crate::queue::admin::Operator;
use crate::store::{dashboard, workers};

/// What every page's layout needs: who is signed in, the CSRF token of its forms.
fn operator(signed: &Signed) -> serde_json::Value {
    json!({ "name": signed.name, "role": signed.role.as_str(), "may_act": signed.role.may_act(),
            "csrf": signed.csrf })
}

pub async fn overview(
    State(app): State<Arc<App>>,
    signed: Signed,
) -> Result<impl IntoResponse, AdminError> {
    let now_ms = app.clock.now_ms();
    let counts = dashboard::counts_by_kind_and_state(&app.store, now_ms).await?;
    let oldest = dashboard::oldest_queued_at_ms(&app.store, now_ms).await?;
    // Liveness is about real time, as the heartbeats are (wall clock, not the job clock).
    let wall_ms = chrono::Utc::now().timestamp_millis();
    let timeout_ms = app.settings.queue.heartbeat_timeout_secs as i64 * 1000;
    let processes = workers::live(&app.store, wall_ms - timeout_ms).await?;
    let states = ["queued", "scheduled", "running", "retrying", "dead", "done"];
    let mut kinds: Vec<String> = counts.iter().map(|row| row.kind.clone()).collect();
    kinds.dedup();
    let table: Vec<_> = kinds
        .iter()
        .map(|kind| {
            let cells: Vec<i64> = states
                .iter()
                .map(|state| {
                    counts
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
                    "jobs_held": process.jobs_held, "started": time(process.started_at_ms),
                    "beat_ago": duration(wall_ms - process.last_beat_ms) })
        })
        .collect();
    Ok(render(
        "overview.html",
        context! { operator => operator(&signed), states => states, table => table,
        processes => processes,
        oldest_age => oldest.map(|at| duration(now_ms - at)) },
    ))
}

/// The signed-in operator as the queue's actions record them.
fn acting(signed: &Signed) -> Result<Operator, AdminError> {
    signed.may_act()?;
    Ok(Operator::new(&signed.name)?)
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), shown)
}

fn shown(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn duration(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}
