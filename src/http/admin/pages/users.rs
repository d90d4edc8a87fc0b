//! "What happened to user 42?": the user's jobs, their failed attempts and the audit rows
//! about the user, newest first (`store::admin::user_history`), within an account if given.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::jobs::row;
use super::{operator, shown, time};
use crate::App;
use crate::http::admin::session::Signed;
use crate::http::admin::{AdminError, render};
use crate::store::admin;

/// Rows of each part of a user's history shown.
const HISTORY_LIMIT: i64 = 100;

#[derive(Deserialize)]
pub struct UserQuery {
    user: Option<String>,
    account: Option<String>,
}

fn number(field: &str, value: Option<&str>) -> Result<Option<i64>, AdminError> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(|value| {
            value.parse::<i64>().map_err(|_| {
                AdminError::InvalidFilter(format!("{field} must be a number, not {value:?}"))
            })
        })
        .transpose()
}

pub async fn history(
    State(app): State<Arc<App>>,
    signed: Signed,
    Query(query): Query<UserQuery>,
) -> Result<impl IntoResponse, AdminError> {
    let user_id = number("user", query.user.as_deref())?;
    let account_id = number("account", query.account.as_deref())?;
    let now_ms = app.clock.now_ms();
    let history = match user_id {
        Some(user_id) => {
            Some(admin::user_history(&app.store, user_id, account_id, HISTORY_LIMIT, now_ms).await?)
        }
        None => None,
    };
    let found = history.map(|history| {
        let jobs: Vec<_> = history.jobs.iter().map(|job| row(job, now_ms)).collect();
        let attempts: Vec<_> = history
            .attempts
            .iter()
            .map(|row| {
                json!({ "job_id": row.job_id, "attempt": row.attempt, "error": row.error,
                        "permanent": row.permanent, "at": time(row.at_ms) })
            })
            .collect();
        let audit: Vec<_> = history
            .audit
            .iter()
            .map(|row| {
                json!({ "account_id": row.account_id, "actor": row.actor, "job_id": row.job_id,
                        "entity": row.entity, "entity_id": row.entity_id,
                        "action": row.action, "detail": row.detail, "at": shown(row.at) })
            })
            .collect();
        json!({ "jobs": jobs, "attempts": attempts, "audit": audit })
    });
    Ok(render(
        "user.html",
        context! { operator => operator(&signed), user_id => user_id, account_id => account_id,
        found => found, limit => HISTORY_LIMIT },
    ))
}
