//! The operators' actions beyond one job's retry: pause and resume a job kind, confirm an
//! account the idle-lock breaker holds, and the audit page of every recorded action. Each
//! POST needs the operator role and the session's CSRF token, and acts through the same
//! function as the CLI (`Queue::pause_kind`, `resume_kind`, `confirm_lock_idle`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::session::Signed;
use super::view::{acting, encode, operator, time};
use super::{AdminError, render};
use crate::App;
use crate::handlers::sweep::SweepKind;
use crate::store::{admin, sweeps};

/// Rows of the audit page shown at once, newest first.
const ACTIONS_LIMIT: i64 = 500;

#[derive(Deserialize)]
pub struct KindForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
}

pub async fn pause_kind(
    State(app): State<Arc<App>>,
    signed: Signed,
    axum::Form(form): axum::Form<KindForm>,
) -> Result<Response, AdminError> {
    set_paused(&app, &signed, &form, true).await
}

pub async fn resume_kind(
    State(app): State<Arc<App>>,
    signed: Signed,
    axum::Form(form): axum::Form<KindForm>,
) -> Result<Response, AdminError> {
    set_paused(&app, &signed, &form, false).await
}

async fn set_paused(
    app: &App,
    signed: &Signed,
    form: &KindForm,
    pause: bool,
) -> Result<Response, AdminError> {
    signed.may_act()?;
    signed.check_csrf(&form.csrf)?;
    let kind = lifecycle_jobs::kind_name(form.kind.trim())
        .ok_or(AdminError::BadField("kind: no such job kind"))?;
    let operator = acting(signed)?;
    let (name, _) = if pause {
        app.queue.pause_kind(&operator, kind).await?
    } else {
        app.queue.resume_kind(&operator, kind).await?
    };
    let done = if pause { "paused" } else { "resumed" };
    Ok(Redirect::to(&format!("/admin?{done}={}#kinds", encode(name))).into_response())
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    account: String,
}

/// What `lifecycle sweep lock-idle --account A --confirm` does: a LockIdleUsers run over
/// the account that lifts its hold and locks, as of now; recorded with the operator's name.
pub async fn confirm_lock_idle(
    State(app): State<Arc<App>>,
    signed: Signed,
    axum::Form(form): axum::Form<ConfirmForm>,
) -> Result<Response, AdminError> {
    signed.may_act()?;
    signed.check_csrf(&form.csrf)?;
    let account_id = form
        .account
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(AdminError::BadField("account: must be a positive number"))?;
    // Only a held account: a confirmation lifts the breaker, which must have tripped.
    let held = sweeps::open_holds(&app.store, SweepKind::LockIdle.as_str())
        .await?
        .iter()
        .any(|hold| hold.account_id == account_id);
    if !held {
        return Err(AdminError::NotHeld(account_id));
    }
    let operator = acting(&signed)?;
    app.queue
        .confirm_lock_idle(&operator, account_id, app.clock.now())
        .await?;
    Ok(Redirect::to(&format!("/admin?confirmed={account_id}#holds")).into_response())
}

/// The audit page: every recorded operator action, newest first.
pub async fn audit(
    State(app): State<Arc<App>>,
    signed: Signed,
) -> Result<impl IntoResponse, AdminError> {
    let actions = admin::list_actions(&app.store, ACTIONS_LIMIT).await?;
    let rows: Vec<_> = actions
        .iter()
        .map(|action| {
            // The jobs of a retry or discard are a JSON array of ids: linked one by one.
            let jobs: Vec<Uuid> = serde_json::from_str(&action.target).unwrap_or_default();
            json!({ "operator": action.operator, "action": action.action,
                    "target": action.target, "jobs": jobs, "job_count": action.job_count,
                    "reason": action.reason, "at": time(action.at_ms) })
        })
        .collect();
    Ok(render(
        "actions.html",
        context! { operator => operator(&signed), rows => rows, limit => ACTIONS_LIMIT },
    ))
}

/// `/admin/`, `/admin/jobs/`, ...: the same page without the trailing slash, query kept.
pub async fn without_trailing_slash(uri: Uri) -> Redirect {
    let path = uri.path().trim_end_matches('/');
    let path = if path.is_empty() { "/admin" } else { path };
    match uri.query() {
        Some(query) => Redirect::permanent(&format!("{path}?{query}")),
        None => Redirect::permanent(path),
    }
}
