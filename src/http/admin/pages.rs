//! The pages: thin handlers that read through `store::dashboard` (and the ledger) and hand
//! plain values to the templates, which escape them.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::session::{CsrfForm, Signed};
use super::{AdminError, render};
use crate::App;
use crate::domain::admin::mask_payload;
use crate::store::dashboard::{self, JobFilter};
use crate::store::ledger;

/// Rows of the jobs list shown at once.
const LIST_LIMIT: i64 = 200;

/// What every page's layout needs: who is signed in, the CSRF token of its forms.
fn operator(signed: &Signed) -> serde_json::Value {
    json!({ "name": signed.name, "role": signed.role.as_str(), "may_act": signed.role.may_act(),
            "csrf": signed.csrf })
}

#[derive(Deserialize)]
pub struct ListQuery {
    kind: Option<String>,
    state: Option<String>,
    account: Option<String>,
}

pub async fn jobs(
    State(app): State<Arc<App>>,
    signed: Signed,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, AdminError> {
    let given = |value: Option<String>| value.filter(|value| !value.trim().is_empty());
    // Failed and dead jobs unless asked otherwise; "any" lifts the filter.
    let state = given(query.state).unwrap_or_else(|| "failed".into());
    let account = given(query.account);
    let account_id = match account.as_deref().map(str::parse::<i64>) {
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return Err(AdminError::BadFilter("account must be a number")),
        None => None,
    };
    let filter = JobFilter {
        kind: given(query.kind),
        state: (state != "any").then(|| state.clone()),
        account_id,
    };
    let rows = dashboard::list_jobs(&app.store, &filter, LIST_LIMIT).await?;
    let rows: Vec<_> = rows
        .iter()
        .map(|row| {
            json!({ "id": row.id, "kind": row.kind, "account_id": row.account_id,
                    "state": row.state, "attempts": row.attempts,
                    "max_attempts": row.max_attempts, "last_error": row.last_error,
                    "created": time(row.created_at_ms) })
        })
        .collect();
    Ok(render(
        "jobs.html",
        context! { operator => operator(&signed), rows => rows, limit => LIST_LIMIT,
        kinds => lifecycle_jobs::KINDS.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        filter => json!({ "kind": filter.kind, "state": state, "account": account }) },
    ))
}

#[derive(Deserialize)]
pub struct JobQuery {
    retried: Option<String>,
}

pub async fn job(
    State(app): State<Arc<App>>,
    signed: Signed,
    Path(id): Path<String>,
    Query(query): Query<JobQuery>,
) -> Result<impl IntoResponse, AdminError> {
    let job_id = Uuid::parse_str(&id).map_err(|_| AdminError::NoJob(id.clone()))?;
    let record = ledger::get(&app.store, job_id)
        .await?
        .ok_or(AdminError::NoJob(id))?;
    let trail = dashboard::job_trail(&app.store, job_id).await?;
    let payload = serde_json::from_str::<serde_json::Value>(&record.payload)
        .map(|payload| mask_payload(&payload))
        .map_or_else(
            |_| "(not JSON)".to_string(),
            |masked| serde_json::to_string_pretty(&masked).unwrap_or_default(),
        );
    let attempts: Vec<_> = trail
        .attempts
        .iter()
        .map(|row| {
            json!({ "attempt": row.attempt, "error": row.error,
                          "permanent": row.permanent, "at": time(row.at_ms) })
        })
        .collect();
    let audit: Vec<_> = trail
        .audit
        .iter()
        .map(|row| {
            json!({ "actor": row.actor, "entity": row.entity, "entity_id": row.entity_id,
                          "action": row.action, "detail": row.detail })
        })
        .collect();
    let events: Vec<_> = trail
        .events
        .iter()
        .map(|row| {
            json!({ "id": row.id, "kind": row.kind, "user_id": row.user_id,
                          "changes": row.changes, "at": shown(row.at) })
        })
        .collect();
    let emails: Vec<_> = trail
        .emails
        .iter()
        .map(|row| {
            json!({ "id": row.id, "template": row.template, "language": row.language,
                          "to": row.to_address, "state": row.state,
                          "at": shown(row.created_at) })
        })
        .collect();
    let job = json!({ "id": record.id, "kind": record.kind, "account_id": record.account_id,
                      "state": record.state, "attempts": record.attempts,
                      "max_attempts": record.max_attempts, "last_error": record.last_error,
                      "created": time(record.created_at_ms), "run_at": time(record.run_at_ms),
                      "finished": record.finished_at_ms.map(time),
                      "retryable": matches!(record.state.as_str(), "dead" | "done") });
    Ok(render(
        "job.html",
        context! { operator => operator(&signed), job => job, payload => payload,
        attempts => attempts, audit => audit, events => events, emails => emails,
        retried => query.retried },
    ))
}

/// Runs the job again through the normal path: its guards are checked again, and effects
/// already applied are not applied twice (the ledger's applied mark).
pub async fn retry(
    State(app): State<Arc<App>>,
    signed: Signed,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, AdminError> {
    signed.may_act()?;
    signed.check_csrf(&form.csrf)?;
    let job_id = Uuid::parse_str(&id).map_err(|_| AdminError::NoJob(id.clone()))?;
    let requeued = app.queue.retry_now(job_id).await?;
    tracing::info!(operator = %signed.name, %job_id, requeued, "dashboard retry");
    let outcome = if requeued { "yes" } else { "no" };
    Ok(Redirect::to(&format!("/admin/jobs/{job_id}?retried={outcome}")).into_response())
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), shown)
}

fn shown(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
