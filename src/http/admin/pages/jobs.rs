//! The jobs list: the operator's filter over the ledger (`store::admin::list_jobs`), newest
//! first, a page at a time, each page seeking on the id where the last one ended.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use minijinja::context;
use serde_json::json;

use super::filter::{FilterQuery, STATE_CHOICES};
use super::{operator, time};
use crate::App;
use crate::http::admin::session::Signed;
use crate::http::admin::{AdminError, render};
use crate::store::admin::{self, JobFilter, JobState};
use crate::store::ledger::JobRecord;

/// Rows of the jobs list shown at once.
pub const PAGE_SIZE: i64 = 50;

pub async fn list(
    State(app): State<Arc<App>>,
    signed: Signed,
    Query(query): Query<FilterQuery>,
) -> Result<impl IntoResponse, AdminError> {
    let filter = query.filter()?;
    let after = query.cursor()?;
    let now_ms = app.clock.now_ms();
    // One row more than a page tells whether there is a next one.
    let mut jobs = admin::list_jobs(&app.store, &filter, after, PAGE_SIZE + 1, now_ms)
        .await?
        .jobs;
    let more = jobs.len() as i64 > PAGE_SIZE;
    jobs.truncate(PAGE_SIZE as usize);
    let kept = query.query();
    let with_filter = |extra: String| {
        let joined = [kept.clone(), extra]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("&");
        format!("/admin/jobs?{joined}")
    };
    let next = jobs
        .last()
        .filter(|_| more)
        .map(|last| with_filter(format!("after={}", last.id)));
    let rows: Vec<_> = jobs.iter().map(|job| row(job, now_ms)).collect();
    Ok(render(
        "jobs.html",
        context! { operator => operator(&signed), rows => rows, filter => &query,
        state => query.state(), states => STATE_CHOICES,
        kinds => lifecycle_jobs::KINDS.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        next => next, first => after.map(|_| with_filter(String::new())), back => kept,
        retry_matching => bulk_retryable(&filter)
            .then(|| format!("/admin/jobs/retry-matching?{}", query.query())) },
    ))
}

/// A job as a row of a list (this one and a user's page).
pub(super) fn row(job: &JobRecord, now_ms: i64) -> serde_json::Value {
    let state = JobState::of(job, now_ms);
    let user_id = serde_json::from_str::<serde_json::Value>(&job.payload)
        .ok()
        .and_then(|payload| payload.get("user_id").and_then(serde_json::Value::as_i64));
    json!({ "id": job.id, "kind": job.kind, "account_id": job.account_id, "user_id": user_id,
            "state": state.as_str(), "attempts": job.attempts, "max_attempts": job.max_attempts,
            "last_error": job.last_error, "created": time(job.created_at_ms),
            "retryable": retryable(state) })
}

/// Whether a job in `state` can be run again: what `Queue::retry_jobs` queues.
pub(super) fn retryable(state: JobState) -> bool {
    matches!(
        state,
        JobState::Dead | JobState::Discarded | JobState::Retrying
    )
}

/// Whether "retry all matching" applies to `filter`: only to failed jobs, as
/// `Queue::retry_matching` requires.
pub(super) fn bulk_retryable(filter: &JobFilter) -> bool {
    match filter.state {
        Some(state) => retryable(state),
        None => filter.failed,
    }
}
