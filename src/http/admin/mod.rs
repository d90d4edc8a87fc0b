//! The operators' dashboard at `/admin`: server-rendered pages (minijinja, escaped by
//! default), a stylesheet of its own, no script. Every page needs a signed-in operator
//! ([`session::Signed`]); every form carries the session's CSRF token.

mod actions;
mod overview;
mod pages;
pub mod session;
mod view;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Environment;

use crate::App;
use crate::queue::QueueError;
use crate::queue::admin::AdminError as ActionError;
use crate::store::StoreError;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/admin/login",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/admin/logout", post(session::sign_out))
        .route("/admin/style.css", get(stylesheet))
        .route("/admin", get(overview::overview))
        .route("/admin/", get(actions::without_trailing_slash))
        .route("/admin/jobs/", get(actions::without_trailing_slash))
        .route("/admin/actions", get(actions::audit))
        .route("/admin/actions/", get(actions::without_trailing_slash))
        .route("/admin/kinds/pause", post(actions::pause_kind))
        .route("/admin/kinds/resume", post(actions::resume_kind))
        .route(
            "/admin/sweeps/lock-idle/confirm",
            post(actions::confirm_lock_idle),
        )
        .route("/admin/jobs", get(pages::jobs::list))
        .route("/admin/jobs/retry", post(pages::bulk::retry_selected))
        .route(
            "/admin/jobs/retry-matching",
            get(pages::bulk::confirm_retry_matching).post(pages::bulk::retry_matching),
        )
        .route("/admin/jobs/{id}", get(pages::job::show))
        .route("/admin/jobs/{id}/retry", post(pages::job::retry))
        .route("/admin/jobs/{id}/discard", post(pages::job::discard))
        .route("/admin/users", get(pages::users::history))
}

/// Why a dashboard request was refused; each is a short page with its status.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("sign in first")]
    SignedOut,
    #[error("the form's CSRF token is missing or wrong: reload the page and try again")]
    Csrf,
    #[error("viewers read only: this action needs the operator role")]
    ReadOnly,
    #[error("too many failed sign-ins: try again in {0} minutes")]
    TooManyFailures(u32),
    /// A filter's value that cannot be read, the message naming its field and the value.
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// A form field with a value the action cannot take (named in the message).
    #[error("{0}")]
    BadForm(String),
    #[error("no job {0}")]
    NoJob(String),
    #[error("invalid {0}")]
    BadField(&'static str),
    #[error("account {0} is not held by the idle-lock circuit breaker")]
    NotHeld(i64),
    #[error(transparent)]
    ConfirmHold(#[from] crate::queue::breaker_hold::ConfirmHoldError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Action(#[from] ActionError),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match &self {
            AdminError::SignedOut => StatusCode::UNAUTHORIZED,
            AdminError::Csrf | AdminError::ReadOnly => StatusCode::FORBIDDEN,
            AdminError::TooManyFailures(_) => StatusCode::TOO_MANY_REQUESTS,
            AdminError::InvalidFilter(_) | AdminError::BadForm(_) => StatusCode::BAD_REQUEST,
            AdminError::Action(
                ActionError::MissingReason
                | ActionError::InvalidOperator(_)
                | ActionError::UnknownKind(_)
                | ActionError::NotRetryableState(_),
            ) => StatusCode::BAD_REQUEST,
            AdminError::Action(ActionError::NoSuchJob(_)) => StatusCode::NOT_FOUND,
            AdminError::Action(ActionError::NotDiscardable { .. }) => StatusCode::CONFLICT,
            AdminError::NoJob(_) => StatusCode::NOT_FOUND,
            AdminError::BadField(_)
            | AdminError::ConfirmHold(
                crate::queue::breaker_hold::ConfirmHoldError::InvalidAccount(_),
            ) => StatusCode::BAD_REQUEST,
            AdminError::NotHeld(_) => StatusCode::CONFLICT,
            AdminError::Action(_) | AdminError::ConfirmHold(_) | AdminError::Config(_) => {
                tracing::error!(error = %self, "dashboard action failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            AdminError::Store(_) | AdminError::Queue(_) => {
                tracing::error!(error = %self, "dashboard request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let page = render(
            "error.html",
            minijinja::context! { status => status.as_u16(), message => self.to_string() },
        );
        (status, page).into_response()
    }
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // `.html` names turn on HTML escaping of every value (minijinja's default callback).
    for (name, source) in [
        ("layout.html", include_str!("templates/layout.html")),
        ("login.html", include_str!("templates/login.html")),
        ("error.html", include_str!("templates/error.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("jobs.html", include_str!("templates/jobs.html")),
        ("job.html", include_str!("templates/job.html")),
        ("user.html", include_str!("templates/user.html")),
        ("confirm.html", include_str!("templates/confirm.html")),
        ("result.html", include_str!("templates/result.html")),
        ("actions.html", include_str!("templates/actions.html")),
    ] {
        env.add_template(name, source)
            .expect("the dashboard's templates parse (tests/dashboard_browser.rs renders each)");
    }
    env
});

/// A page; a template that fails to render is a bug, shown as a plain error page.
fn render(name: &str, context: minijinja::Value) -> Html<String> {
    match TEMPLATES
        .get_template(name)
        .and_then(|template| template.render(context))
    {
        Ok(page) => Html(page),
        Err(error) => {
            tracing::error!(%error, template = name, "dashboard template failed");
            Html("<!doctype html><title>error</title><p>The page could not be shown.".into())
        }
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("templates/style.css"),
    )
}
