//! The enqueue API: `POST /v1/jobs/{kind}` hands a job over, `GET /v1/jobs/{id}` shows it.
//! Both need a bearer token: a scoped service token of `[[http.tokens]]` (the kinds it may
//! enqueue, whether it may act as `system`, its accounts) or a development token of
//! `http.api_tokens` (every public kind, every account). The handlers only translate: the
//! payload rules live in `lifecycle_jobs::validate_json`, the enqueue in
//! [`crate::queue::Queue`].
//!
//! * `error`: [`ApiError`], one status code and one JSON [`ErrorBody`] per refusal;
//! * `auth`: the bearer tokens ([`ApiTokens`]) and what each may do ([`TokenScope`]);
//! * `request`: the checks every enqueue shares (Content-Type, body size, idempotency key);
//! * `enqueue`: `POST /v1/jobs/{kind}` and `POST /v1/jobs`;
//! * `read`: `GET /v1/jobs/{id}`;
//! * `super::metrics`: `GET /metrics`, for tokens with the `metrics` scope;
//! * here: the router, the token check in front of it and the JSON answers to paths and
//!   methods it has no route for.

mod auth;
mod enqueue;
mod error;
mod read;
mod request;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use lifecycle_jobs::MAX_PAYLOAD_BYTES;

use crate::App;

// The `__path_*` types are what `#[utoipa::path]` generates: the OpenAPI document names
// the handlers as `api::show` and `api::enqueue_batch`, and takes its tag from that path.
pub use auth::{ApiTokens, TokenScope, new_service_token};
pub use enqueue::{__path_enqueue_batch, MAX_BATCH_BODY_BYTES, enqueue, enqueue_batch};
pub use error::{ApiError, ErrorBody};
pub use read::{__path_show, show};
pub use request::{IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_PATTERN, MAX_IDEMPOTENCY_KEY_BYTES};

/// The API's routes, each behind the bearer-token check, bodies capped at the payload limit.
pub fn routes(app: &App) -> Router<Arc<App>> {
    let tokens = ApiTokens::from_settings(&app.settings.http);
    Router::new()
        // One route for both: `{kind}` and `{id}` at the same place would conflict.
        .route("/v1/jobs/{kind_or_id}", get(show).post(enqueue))
        // 1,000 jobs do not fit in the limit of one payload.
        .route(
            "/v1/jobs",
            axum::routing::post(enqueue_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)),
        )
        .route(
            "/v1/tokens/check",
            axum::routing::post(super::tokens::check),
        )
        .route("/metrics", get(super::metrics::serve))
        .route_layer(middleware::from_fn_with_state(tokens, require_token))
        // Any other path under /v1 (`/v1/jobs/a/b`, `/v1/jobs/`, `/v1/jobs/../x`) and any
        // other method answer like every refusal, in JSON, rather than with an empty body.
        .route("/v1/{*rest}", any(|| async { ApiError::NoSuchEndpoint }))
        .method_not_allowed_fallback(|uri: axum::http::Uri| async move {
            ApiError::MethodNotAllowed {
                allow: allowed_methods(uri.path()),
            }
        })
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES))
}

/// The methods a path of the API takes, as its OpenAPI document lists them: a kind's path
/// POST, a job's path GET (and HEAD).
fn allowed_methods(path: &str) -> &'static str {
    match path.strip_prefix("/v1/jobs/") {
        Some(kind) if lifecycle_jobs::kind_name(kind).is_some() => "POST",
        Some(_) => "GET, HEAD",
        None => "POST",
    }
}

/// Lets a request through with its token's [`TokenScope`] as an extension, or answers 401.
async fn require_token(
    State(tokens): State<ApiTokens>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let scope = presented
        .filter(|token| !token.is_empty())
        .and_then(|token| tokens.scope_of(token));
    match scope {
        Some(scope) => {
            request.extensions_mut().insert(scope);
            next.run(request).await
        }
        None => ApiError::Unauthorized.into_response(),
    }
}
