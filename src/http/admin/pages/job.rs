//! A job's page (`store::admin::job_detail`: its payload masked, attempts, audit rows,
//! events and emails), and its two actions: retry, and discard with a reason.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::jobs::retryable;
use super::{acting, operator, shown, time};
use crate::App;
use crate::domain::admin::mask_payload;
use crate::http::admin::session::{CsrfForm, Signed};
use crate::http::admin::{AdminError, render};
use crate::store::admin::{self, JobState};

#[derive(Deserialize)]
pub struct JobQuery {
    retried: Option<String>,
    discarded: Option<String>,
}

fn job_id(id: &str) -> Result<Uuid, AdminError> {
    Uuid::parse_str(id).map_err(|_| AdminError::NoJob(id.to_string()))
}

pub async fn show(
    State(app): State<Arc<App>>,
    signed: Signed,
    Path(id): Path<String>,
    Query(query): Query<JobQuery>,
) -> Result<impl IntoResponse, AdminError> {
    let detail = admin::job_detail(&app.store, job_id(&id)?)
        .await?
        .ok_or(AdminError::NoJob(id))?;
    let record = &detail.job;
    let state = JobState::of(record, app.clock.now_ms());
    let payload = serde_json::from_str::<serde_json::Value>(&record.payload)
        .map(|payload| mask_payload(&payload))
        .map_or_else(
            |_| "(not JSON)".to_string(),
            |masked| serde_json::to_string_pretty(&masked).unwrap_or_default(),
        );
    let attempts: Vec<_> = detail
        .attempts
        .iter()
        .map(|row| {
            json!({ "attempt": row.attempt, "error": row.error,
                    "permanent": row.permanent, "at": time(row.at_ms) })
        })
        .collect();
    let audit: Vec<_> = detail
        .audit
        .iter()
        .map(|row| {
            json!({ "actor": row.actor, "entity": row.entity, "entity_id": row.entity_id,
                    "action": row.action, "detail": row.detail, "at": shown(row.at) })
        })
        .collect();
    let events: Vec<_> = detail
        .events
        .iter()
        .map(|row| {
            json!({ "id": row.id, "kind": row.kind, "user_id": row.user_id,
                    "changes": row.changes, "at": shown(row.at) })
        })
        .collect();
    let emails: Vec<_> = detail
        .emails
        .iter()
        .map(|row| {
            json!({ "id": row.id, "template": row.template, "language": row.language,
                    "to": row.to_address, "state": row.state, "at": shown(row.created_at) })
        })
        .collect();
    let job = json!({ "id": record.id, "kind": record.kind, "account_id": record.account_id,
                      "state": state.as_str(), "attempts": record.attempts,
                      "max_attempts": record.max_attempts, "last_error": record.last_error,
                      "created": time(record.created_at_ms), "run_at": time(record.run_at_ms),
                      "finished": record.finished_at_ms.map(time),
                      "retryable": retryable(state),
                      // What `store::admin::discard` takes: waiting to run, or dead.
                      "discardable": matches!(record.state.as_str(), "queued" | "dead") });
    Ok(render(
        "job.html",
        context! { operator => operator(&signed), job => job, payload => payload,
        attempts => attempts, audit => audit, events => events, emails => emails,
        retried => query.retried, discarded => query.discarded },
    ))
}

/// Runs the job again through the normal path (`Queue::retry_jobs`: its guards are checked
/// again, effects already applied are not applied twice), recorded with the operator's name.
pub async fn retry(
    State(app): State<Arc<App>>,
    signed: Signed,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, AdminError> {
    let operator_name = acting(&signed)?;
    signed.check_csrf(&form.csrf)?;
    let job_id = job_id(&id)?;
    let retried = app.queue.retry_jobs(&operator_name, &[job_id]).await?;
    let requeued = !retried.queued.is_empty();
    tracing::info!(operator = %signed.name, %job_id, requeued, "dashboard retry");
    let outcome = if requeued { "yes" } else { "no" };
    Ok(Redirect::to(&format!("/admin/jobs/{job_id}?retried={outcome}")).into_response())
}

#[derive(Deserialize)]
pub struct DiscardForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// Gives up on the job for the reason given (required): `discarded`, its history kept.
pub async fn discard(
    State(app): State<Arc<App>>,
    signed: Signed,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<DiscardForm>,
) -> Result<Response, AdminError> {
    let operator_name = acting(&signed)?;
    signed.check_csrf(&form.csrf)?;
    let job_id = job_id(&id)?;
    app.queue
        .discard_job(&operator_name, job_id, &form.reason)
        .await?;
    tracing::info!(operator = %signed.name, %job_id, "dashboard discard");
    Ok(Redirect::to(&format!("/admin/jobs/{job_id}?discarded=yes")).into_response())
}
