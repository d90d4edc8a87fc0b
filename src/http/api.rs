//! The enqueue API: `POST /v1/jobs/{kind}` hands a job over, `GET /v1/jobs/{id}` shows it.
//! Both need a bearer token from `http.api_tokens`. The handlers only translate: the payload
//! rules live in `lifecycle_jobs::validate_json`, the enqueue in [`crate::queue::Queue`].

use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use lifecycle_jobs::{Enqueued, InvalidPayload, JobStatus, MAX_PAYLOAD_BYTES};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::App;
use crate::config::Secret;
use crate::queue::{EnqueueRequest, QueueError};
use crate::store::StoreError;
use crate::store::ledger::{self, JobRecord};

/// The header a producer sets so that a retried request enqueues nothing new.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Longer keys are refused: they are stored and indexed with every job.
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;

/// Every refusal: what is wrong and, for bad input, the field at fault.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    /// The field at fault (`user_id`, `kind`, `payload` for the document as a whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The ledger row as the API shows it.
fn job_status(record: JobRecord) -> JobStatus {
    JobStatus {
        id: record.id,
        kind: record.kind,
        state: record.state,
        attempts: record.attempts,
        max_attempts: record.max_attempts,
        last_error: record.last_error,
        created_at_ms: record.created_at_ms,
        finished_at_ms: record.finished_at_ms,
    }
}

/// Why a request was not served; each maps to one status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("the body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the body is larger than {MAX_PAYLOAD_BYTES} bytes")]
    PayloadTooLarge,
    #[error("cannot read the body: {0}")]
    UnreadableBody(String),
    #[error("{0}")]
    Invalid(#[from] InvalidPayload),
    #[error("no job with this id")]
    NotFound,
    #[error("no such endpoint: jobs are posted to /v1/jobs/{{kind}} and shown at /v1/jobs/{{id}}")]
    NoSuchEndpoint,
    #[error("method not allowed here")]
    MethodNotAllowed,
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnreadableBody(_) | ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound | ApiError::NoSuchEndpoint => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Queue(_) | ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::Invalid(invalid) => ErrorBody {
                error: invalid.to_string(),
                field: Some(invalid.field.clone()),
            },
            // Infrastructure trouble is logged with its cause; the caller only learns that
            // it may try again later.
            ApiError::Queue(_) | ApiError::Store(_) => {
                tracing::error!(error = %self, "enqueue API: storage unavailable");
                ErrorBody {
                    error: "the job store is unavailable; try again later".into(),
                    field: None,
                }
            }
            other => ErrorBody {
                error: other.to_string(),
                field: None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The SHA-256 digests of the accepted tokens. Comparing digests takes the same time
/// whatever the length of the presented token, and the comparison itself is constant-time.
#[derive(Clone)]
pub struct ApiTokens(Arc<Vec<[u8; 32]>>);

impl fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiTokens({} accepted)", self.0.len())
    }
}

impl ApiTokens {
    pub fn new(tokens: &[Secret<String>]) -> Self {
        // An empty token would let `Authorization: Bearer ` in: never accepted.
        let digests = tokens
            .iter()
            .map(|token| token.expose().trim())
            .filter(|token| !token.is_empty())
            .map(digest)
            .collect();
        Self(Arc::new(digests))
    }

    /// Whether `presented` is one of the tokens; looks at every token, stopping at none.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented);
        self.0.iter().fold(false, |found, accepted| {
            found | constant_time_eq(accepted, &presented)
        })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equality whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The API's routes, each behind the bearer-token check, bodies capped at the payload limit.
pub fn routes(app: &App) -> Router<Arc<App>> {
    let tokens = ApiTokens::new(&app.settings.http.api_tokens);
    Router::new()
        // One route for both: `{kind}` and `{id}` at the same place would conflict.
        .route("/v1/jobs/{kind_or_id}", get(show).post(enqueue))
        .route(
            "/v1/tokens/check",
            axum::routing::post(super::tokens::check),
        )
        .route_layer(middleware::from_fn_with_state(tokens, require_token))
        // Any other path under /v1 (`/v1/jobs/a/b`, `/v1/jobs/`, `/v1/jobs/../x`) and any
        // other method answer like every refusal, in JSON, rather than with an empty body.
        .route("/v1/{*rest}", any(|| async { ApiError::NoSuchEndpoint }))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES))
}

async fn require_token(State(tokens): State<ApiTokens>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match presented {
        Some(token) if !token.is_empty() && tokens.accepts(token) => next.run(request).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// Enqueues a job of `kind` (a slug such as `deactivate-user`) with the body as payload.
/// Documented per kind in [`super::openapi`], each with its payload schema.
pub async fn enqueue(
    State(app): State<Arc<App>>,
    kind: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    let Path(kind) = kind.map_err(|rejection| {
        InvalidPayload::new("kind", format!("unreadable: {}", rejection.body_text()))
    })?;
    require_json(&headers)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::UnreadableBody(rejection.body_text())
        }
    })?;
    let idempotency_key = idempotency_key(&headers)?;
    let json = std::str::from_utf8(&body)
        .map_err(|_| InvalidPayload::new("payload", "is not UTF-8 text"))?;
    let validated = lifecycle_jobs::validate_json(&kind, json)?;
    let enqueued = app
        .queue
        .enqueue(EnqueueRequest {
            kind: validated.name,
            account_id: Some(validated.account_id),
            payload: validated.payload,
            idempotency_key,
            run_at_ms: None,
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Enqueued {
            job_id: enqueued.id,
            created: enqueued.created,
        }),
    ))
}

/// Shows a job: its state, attempts and last error.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    params(("id" = Uuid, Path, description = "The job id returned at enqueue")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job", body = JobStatus),
        (status = 400, description = "Not a job id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub async fn show(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<JobStatus>, ApiError> {
    let not_an_id = || InvalidPayload::new("id", "must be a job id (a UUID)");
    let Path(id) = id.map_err(|_| not_an_id())?;
    let id = Uuid::parse_str(&id).map_err(|_| not_an_id())?;
    let record = ledger::get(&app.store, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(job_status(record)))
}

/// JSON or a `+json` type; a missing Content-Type is refused too, as with axum's `Json`.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase());
    match mime {
        Some(mime) if mime == "application/json" || mime.ends_with("+json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let invalid = |reason: &str| InvalidPayload::new("Idempotency-Key", reason);
    let key = value
        .to_str()
        .map_err(|_| invalid("must be visible ASCII"))?
        .trim();
    if key.is_empty() {
        return Err(invalid("must not be empty").into());
    }
    if key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(invalid(&format!(
            "must be at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes"
        ))
        .into());
    }
    Ok(Some(key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_non_empty_tokens() {
        let tokens = ApiTokens::new(&[Secret::new("s3cret".into()), Secret::new(" ".into())]);
        assert!(tokens.accepts("s3cret"));
        assert!(!tokens.accepts("s3cre"));
        assert!(!tokens.accepts("s3cret "));
        assert!(!tokens.accepts(""));
        assert!(!ApiTokens::new(&[]).accepts(""));
        assert_eq!(format!("{tokens:?}"), "ApiTokens(1 accepted)");
    }

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(require_json(&headers).is_err());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(require_json(&headers).is_ok());
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(require_json(&headers).is_err());
    }
}
