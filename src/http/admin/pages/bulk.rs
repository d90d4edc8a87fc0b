//! Retrying many jobs at once: the ones ticked on a page, or every job matching the list's
//! filter after the operator confirmed how many that is. Both act through
//! `Queue::retry_jobs`/`retry_matching_at_most`, which record the action with the
//! operator's name.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::filter::FilterQuery;
use super::jobs::bulk_retryable;
use super::{acting, operator};
use crate::App;
use crate::http::admin::session::Signed;
use crate::http::admin::{AdminError, render};
use crate::queue::admin::RETRY_BATCH;
use crate::store::admin::{self, JobFilter};
use crate::store::ledger;

/// "Retry selected": the form's `id` fields (one per ticked row), `csrf`, and `back`, the
/// list's query string to return to.
pub async fn retry_selected(
    State(app): State<Arc<App>>,
    signed: Signed,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Result<Response, AdminError> {
    let operator_name = acting(&signed)?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    };
    signed.check_csrf(field("csrf"))?;
    let ids = fields
        .iter()
        .filter(|(key, _)| key == "id")
        .map(|(_, value)| {
            Uuid::parse_str(value)
                .map_err(|_| AdminError::BadForm(format!("id must be a job id, not {value:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(AdminError::BadForm(
            "id: select at least one job to retry".into(),
        ));
    }
    if ids.len() as i64 > RETRY_BATCH {
        return Err(AdminError::BadForm(format!(
            "id: at most {RETRY_BATCH} jobs at once; use \"Retry all matching\" for more"
        )));
    }
    let retried = app.queue.retry_jobs(&operator_name, &ids).await?;
    let mut skipped = Vec::new();
    for id in &retried.skipped {
        let why = match ledger::get(&app.store, *id).await? {
            None => "no such job".to_string(),
            Some(job) => format!(
                "it is {}: only dead, discarded or retrying jobs are retried",
                job.state
            ),
        };
        skipped.push(json!({ "id": id, "why": why }));
    }
    tracing::info!(operator = %signed.name, retried = retried.queued.len(),
                   skipped = skipped.len(), "dashboard retry of selected jobs");
    let message = format!(
        "Retried {} of the {} selected jobs; skipped {}.",
        retried.queued.len(),
        ids.len(),
        skipped.len()
    );
    Ok(render(
        "result.html",
        context! { operator => operator(&signed), title => "Retry selected", message => message,
        skipped => skipped, back => format!("/admin/jobs?{}", field("back")) },
    )
    .into_response())
}

/// The filter of "retry all matching", read as the list reads it, refused unless it
/// selects failed jobs only.
fn retry_filter(query: &FilterQuery) -> Result<JobFilter, AdminError> {
    let filter = query.filter()?;
    if !bulk_retryable(&filter) {
        return Err(AdminError::InvalidFilter(format!(
            "state must be failed, dead, retrying or discarded to retry all matching, not {:?}",
            query.state()
        )));
    }
    Ok(filter)
}

/// How many jobs match, and a form to confirm retrying exactly that many.
pub async fn confirm_retry_matching(
    State(app): State<Arc<App>>,
    signed: Signed,
    Query(query): Query<FilterQuery>,
) -> Result<Response, AdminError> {
    acting(&signed)?;
    let filter = retry_filter(&query)?;
    let count = admin::count_matching(&app.store, &filter, app.clock.now_ms()).await?;
    Ok(confirm_page(&signed, &query, count, None))
}

fn confirm_page(
    signed: &Signed,
    query: &FilterQuery,
    count: i64,
    confirmed_before: Option<u64>,
) -> Response {
    render(
        "confirm.html",
        context! { operator => operator(signed), filter => query, state => query.state(),
        count => count, confirmed_before => confirmed_before,
        back => format!("/admin/jobs?{}", query.query()) },
    )
    .into_response()
}

#[derive(Deserialize)]
pub struct RetryMatchingForm {
    #[serde(default)]
    csrf: String,
    /// The count the operator saw and confirmed.
    #[serde(default)]
    confirmed: String,
    state: Option<String>,
    kind: Option<String>,
    account: Option<String>,
    user: Option<String>,
    text: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Retries the matching jobs, no more than the count confirmed; when more match now than
/// were confirmed, nothing is retried and the operator is asked again with the new count.
pub async fn retry_matching(
    State(app): State<Arc<App>>,
    signed: Signed,
    axum::Form(form): axum::Form<RetryMatchingForm>,
) -> Result<Response, AdminError> {
    let operator_name = acting(&signed)?;
    signed.check_csrf(&form.csrf)?;
    let confirmed: u64 = form.confirmed.trim().parse().map_err(|_| {
        AdminError::BadForm(format!(
            "confirmed must be the count the confirm page showed, not {:?}",
            form.confirmed
        ))
    })?;
    let query = FilterQuery {
        state: form.state,
        kind: form.kind,
        account: form.account,
        user: form.user,
        text: form.text,
        from: form.from,
        to: form.to,
        after: None,
    };
    let filter = retry_filter(&query)?;
    let now_matching = admin::count_matching(&app.store, &filter, app.clock.now_ms()).await?;
    if u64::try_from(now_matching).unwrap_or(0) > confirmed {
        return Ok(confirm_page(&signed, &query, now_matching, Some(confirmed)));
    }
    let retried = app
        .queue
        .retry_matching_at_most(&operator_name, &filter, confirmed)
        .await?;
    tracing::info!(operator = %signed.name, retried, confirmed, "dashboard retry of all matching");
    let mut message = format!("Retried {retried} of the {confirmed} matching jobs confirmed.");
    if retried < confirmed {
        message.push_str(&format!(
            " The other {} no longer matched (retried, discarded or finished since).",
            confirmed - retried
        ));
    }
    Ok(render(
        "result.html",
        context! { operator => operator(&signed), title => "Retry all matching",
        message => message, skipped => Vec::<serde_json::Value>::new(),
        back => format!("/admin/jobs?{}", query.query()) },
    )
    .into_response())
}
