//! The enqueue API: `POST /v1/jobs/{kind}` hands a job over, `GET /v1/jobs/{id}` shows it.
//! Both need a bearer token: a scoped service token of `[[http.tokens]]` (the kinds it may
//! enqueue, whether it may act as `system`, its accounts) or a development token of
//! `http.api_tokens` (every public kind, every account). The handlers only translate: the
//! payload rules live in `lifecycle_jobs::validate_json`, the enqueue in
//! [`crate::queue::Queue`].

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Extension, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use lifecycle_jobs::{
    BatchItem, BatchRefusal, BatchRequest, BatchResponse, Enqueued, InvalidPayload, JobStatus,
    MAX_BATCH_JOBS, MAX_PAYLOAD_BYTES,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::App;
use crate::config::{HttpSettings, Secret, ServiceToken};
use crate::queue::{EnqueueRequest, IdempotencyKey, QueueError};
use crate::store::StoreError;
use crate::store::ledger::{self, JobRecord};

/// The header a producer sets so that a retried request enqueues nothing new.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Longer keys are refused: they are stored and indexed with every job.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;

/// The keys [`checked_key`] accepts once HTTP has trimmed the header value: visible ASCII,
/// spaces and tabs only inside. Published in the OpenAPI document.
pub const IDEMPOTENCY_KEY_PATTERN: &str = r"^[\x21-\x7e]([\t\x20-\x7e]*[\x21-\x7e])?$";

/// Every refusal: what is wrong and, for bad input, the field at fault.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    /// The field at fault (`user_id`, `kind`, `payload` for the document as a whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For a `409`: the job that holds the idempotency key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
}

impl ErrorBody {
    fn new(error: String, field: Option<String>) -> Self {
        Self {
            error,
            field,
            job_id: None,
        }
    }
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
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("cannot read the body: {0}")]
    UnreadableBody(String),
    #[error("{0}")]
    Invalid(#[from] InvalidPayload),
    #[error("no job with this id")]
    NotFound,
    /// The token's scope does not cover the request; `field` is what is out of it
    /// (`kind`, `actor`, `account_id`), none for a whole endpoint.
    #[error("{reason}")]
    Forbidden {
        field: Option<&'static str>,
        reason: String,
    },
    /// The idempotency key belongs to another job of the account.
    #[error(
        "idempotency key {key:?} already used by job {job_id} with another kind or payload; \
         send a new key for a new job"
    )]
    Conflict { key: String, job_id: Uuid },
    #[error(
        "no such endpoint: jobs are posted to /v1/jobs/{{kind}} (or many to /v1/jobs) and shown \
         at /v1/jobs/{{id}}"
    )]
    NoSuchEndpoint,
    /// `allow`: the methods the path takes, for the `Allow` header.
    #[error("method not allowed here: {allow} only")]
    MethodNotAllowed { allow: &'static str },
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
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnreadableBody(_) | ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound | ApiError::NoSuchEndpoint => StatusCode::NOT_FOUND,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Queue(_) | ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl ApiError {
    /// The body of the refusal: what is wrong and, for bad input, the field at fault.
    fn body(&self) -> ErrorBody {
        match self {
            ApiError::Invalid(invalid) => {
                ErrorBody::new(invalid.to_string(), Some(invalid.field.clone()))
            }
            ApiError::Forbidden { field, reason } => {
                ErrorBody::new(reason.clone(), field.map(String::from))
            }
            ApiError::Conflict { job_id, .. } => ErrorBody {
                job_id: Some(*job_id),
                ..ErrorBody::new(self.to_string(), None)
            },
            // Infrastructure trouble is logged with its cause; the caller only learns that
            // it may try again later.
            ApiError::Queue(_) | ApiError::Store(_) => {
                tracing::error!(error = %self, "enqueue API: storage unavailable");
                ErrorBody::new("the job store is unavailable; try again later".into(), None)
            }
            other => ErrorBody::new(other.to_string(), None),
        }
    }

    /// One item of a batch refused: the body and status the single route would answer.
    fn refusal(self) -> BatchItem {
        let status = self.status().as_u16();
        let body = self.body();
        BatchItem::Refused(BatchRefusal {
            error: body.error,
            field: body.field,
            status,
            job_id: body.job_id,
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // Set here, axum leaves it: its own would list both methods of the shared
        // `/v1/jobs/{kind_or_id}` route, where a kind takes POST only and an id GET only.
        if let ApiError::MethodNotAllowed { allow } = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// What a token may do. Resolved from the configuration once, at start.
#[derive(Debug)]
pub struct TokenScope {
    /// The token's name (`auth-service`), for logs; never the token.
    pub name: String,
    /// The kinds (stable names) it may enqueue and read.
    kinds: HashSet<&'static str>,
    /// Whether its jobs may run as `"actor": "system"`.
    system: bool,
    /// Its accounts; `None`: every account.
    accounts: Option<HashSet<i64>>,
    /// Whether it may call `POST /v1/tokens/check`.
    pub check_tokens: bool,
}

impl TokenScope {
    /// A development token of `http.api_tokens`: every public kind, `system`, every
    /// account, the token check.
    fn everything(name: String) -> Self {
        Self {
            name,
            kinds: lifecycle_jobs::PUBLIC_KINDS.iter().copied().collect(),
            system: true,
            accounts: None,
            check_tokens: true,
        }
    }

    fn of(token: &ServiceToken) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            name: token.name.clone(),
            kinds: token.kind_names()?.into_iter().collect(),
            system: token.system,
            accounts: token
                .accounts
                .as_ref()
                .map(|accounts| accounts.iter().copied().collect()),
            check_tokens: token.check_tokens,
        })
    }

    /// Whether it may enqueue jobs of `name` (a stable name). Internal kinds are refused
    /// to every token, naming the kind: only the service records them.
    pub fn may_enqueue(&self, name: &str) -> Result<(), ApiError> {
        if !lifecycle_jobs::is_public(name) {
            return Err(ApiError::Forbidden {
                field: Some("kind"),
                reason: format!(
                    "{name} is an internal job kind: only the service enqueues it, never over HTTP"
                ),
            });
        }
        if !self.kinds.contains(name) {
            return Err(ApiError::Forbidden {
                field: Some("kind"),
                reason: format!("this token may not enqueue {name} jobs"),
            });
        }
        Ok(())
    }

    /// Whether it may act for `account_id`.
    pub fn may_use_account(&self, account_id: i64) -> Result<(), ApiError> {
        match &self.accounts {
            Some(accounts) if !accounts.contains(&account_id) => Err(ApiError::Forbidden {
                field: Some("account_id"),
                reason: format!("this token may not enqueue jobs for account {account_id}"),
            }),
            _ => Ok(()),
        }
    }

    /// Whether it may send `"actor": "system"`, which skips the checks of a user actor.
    pub fn may_act_as_system(&self) -> Result<(), ApiError> {
        if self.system {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                field: Some("actor"),
                reason: "this token may not act as \"system\": name the user who acts".into(),
            })
        }
    }

    /// Whether it may see a job: one of its kinds, in one of its accounts. A job outside
    /// is answered as one that does not exist, so its existence leaks nothing.
    fn may_read(&self, record: &JobRecord) -> bool {
        self.kinds.contains(record.kind.as_str())
            && match (&self.accounts, record.account_id) {
                (None, _) => true,
                (Some(accounts), Some(account_id)) => accounts.contains(&account_id),
                (Some(_), None) => false,
            }
    }
}

/// The SHA-256 digests of the accepted tokens, each with its scope: tokens are held only
/// as digests, in the configuration and in memory. Comparing digests takes the same time
/// whatever the length of the presented token, and the comparison itself is constant-time.
#[derive(Clone)]
pub struct ApiTokens(Arc<Vec<([u8; 32], Arc<TokenScope>)>>);

impl fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiTokens({} accepted)", self.0.len())
    }
}

impl ApiTokens {
    /// Development tokens only (every permission).
    pub fn new(tokens: &[Secret<String>]) -> Self {
        Self::from_settings(&HttpSettings {
            bind: String::new(),
            api_tokens: tokens.to_vec(),
            tokens: Vec::new(),
        })
    }

    /// The development tokens of `http.api_tokens` and the service tokens of
    /// `[[http.tokens]]`. A service token whose entry is invalid is left out (refused), not
    /// widened: `Settings::load` refuses such a file at start already.
    pub fn from_settings(http: &HttpSettings) -> Self {
        // An empty token would let `Authorization: Bearer ` in: never accepted.
        let development = http
            .api_tokens
            .iter()
            .map(|token| token.expose().trim())
            .filter(|token| !token.is_empty())
            .enumerate()
            .map(|(n, token)| {
                let scope = TokenScope::everything(format!("http.api_tokens[{n}]"));
                (digest(token), Arc::new(scope))
            });
        let service =
            http.tokens
                .iter()
                .filter_map(|token| match (token.digest(), TokenScope::of(token)) {
                    (Ok(digest), Ok(scope)) => Some((digest, Arc::new(scope))),
                    (Err(error), _) | (_, Err(error)) => {
                        tracing::error!(%error, "service token refused");
                        None
                    }
                });
        Self(Arc::new(development.chain(service).collect()))
    }

    /// The scope of `presented`, if it is one of the tokens; looks at every token,
    /// stopping at none.
    pub fn scope_of(&self, presented: &str) -> Option<Arc<TokenScope>> {
        let presented = digest(presented);
        self.0.iter().fold(None, |found, (accepted, scope)| {
            let matches = constant_time_eq(accepted, &presented);
            if matches && found.is_none() {
                Some(Arc::clone(scope))
            } else {
                found
            }
        })
    }

    /// Whether `presented` is one of the tokens.
    pub fn accepts(&self, presented: &str) -> bool {
        self.scope_of(presented).is_some()
    }
}

/// A fresh service token (256 random bits, hex, after a `lc_` prefix that secret scanners
/// can match) and the hex SHA-256 digest that `[[http.tokens]]` holds instead of it.
pub fn new_service_token() -> (Secret<String>, String) {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("lc_{}", hex::encode(bytes));
    let digest = hex::encode(digest(&token));
    (Secret::new(token), digest)
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

/// Enqueues a job of `kind` (a slug such as `deactivate-user`) with the body as payload.
/// Documented per kind in [`super::openapi`], each with its payload schema.
pub async fn enqueue(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Arc<TokenScope>>,
    kind: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    let Path(kind) = kind.map_err(|rejection| {
        InvalidPayload::new("kind", format!("unreadable: {}", rejection.body_text()))
    })?;
    // A job's path (`/v1/jobs/{id}`) is read, not posted to.
    if lifecycle_jobs::kind_name(&kind).is_none() && Uuid::parse_str(&kind).is_ok() {
        return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" });
    }
    // The kind is in the path: a token that may not enqueue it learns so before its body
    // is read. An unknown kind is the payload check's to name.
    if let Some(name) = lifecycle_jobs::kind_name(&kind) {
        scope.may_enqueue(name)?;
    }
    require_json(&headers)?;
    let body = read_body(body, MAX_PAYLOAD_BYTES)?;
    let idempotency_key = idempotency_key(&headers)?;
    let json = std::str::from_utf8(&body)
        .map_err(|_| InvalidPayload::new("payload", "is not UTF-8 text"))?;
    let validated = lifecycle_jobs::validate_json(&kind, json)?;
    validated.check_requested_at(app.clock.now())?;
    scope.may_use_account(validated.account_id)?;
    if acts_as_system(&validated.payload) {
        scope.may_act_as_system()?;
    }
    let enqueued = app
        .queue
        .enqueue(EnqueueRequest {
            kind: validated.name,
            account_id: Some(validated.account_id),
            payload: validated.payload,
            // A producer's key: scoped to the account, never in the service's own space.
            idempotency_key: idempotency_key.map(IdempotencyKey::Caller),
            run_at_ms: None,
        })
        .await
        .map_err(|error| match error {
            QueueError::IdempotencyConflict { key, job_id } => ApiError::Conflict { key, job_id },
            other => ApiError::Queue(other),
        })?;
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
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such job, or one outside the token's accounts or kinds (the same answer)", body = ErrorBody),
        (status = 503, description = "The job store is unavailable; try again later", body = ErrorBody),
    )
)]
pub async fn show(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Arc<TokenScope>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<JobStatus>, ApiError> {
    let not_an_id = || InvalidPayload::new("id", "must be a job id (a UUID)");
    let Path(id) = id.map_err(|_| not_an_id())?;
    // A kind's path (`/v1/jobs/{kind}`) is posted to, not read.
    if lifecycle_jobs::kind_name(&id).is_some() {
        return Err(ApiError::MethodNotAllowed { allow: "POST" });
    }
    let id = Uuid::parse_str(&id).map_err(|_| not_an_id())?;
    let record = ledger::get(&app.store, id)
        .await?
        .filter(|record| scope.may_read(record))
        .ok_or(ApiError::NotFound)?;
    Ok(Json(job_status(record)))
}

/// Whether a validated payload names `"system"` as its actor. The canonical payload holds
/// the actor as the string `"system"` or a user id; kinds without an actor have none.
fn acts_as_system(payload: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct ActorOnly {
        #[serde(default)]
        actor: Option<lifecycle_jobs::Actor>,
    }
    serde_json::from_str::<ActorOnly>(payload)
        .is_ok_and(|only| only.actor == Some(lifecycle_jobs::Actor::System))
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
    let key = value
        .to_str()
        .map_err(|_| InvalidPayload::new("Idempotency-Key", "must be visible ASCII"))?;
    Ok(Some(checked_key("Idempotency-Key", key)?))
}

/// A producer's idempotency key (a header or a batch item's `idempotency_key`): visible
/// ASCII (spaces and tabs inside), not blank, at most 200 bytes once trimmed.
fn checked_key(field: &str, key: &str) -> Result<String, InvalidPayload> {
    let invalid = |reason: String| InvalidPayload::new(field, reason);
    if !key.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return Err(invalid("must be visible ASCII".into()));
    }
    let key = key.trim();
    if key.is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    if key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(invalid(format!(
            "must be at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes"
        )));
    }
    Ok(key.to_string())
}

/// The body, or 413 past `limit` (the route's [`DefaultBodyLimit`]).
fn read_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::UnreadableBody(rejection.body_text())
        }
    })
}

/// The body limit of `POST /v1/jobs`: 1,000 jobs of up to about 4 KiB each.
pub const MAX_BATCH_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A batch as read off the wire: each payload kept as sent, so that it goes through the
/// same decoding as the body of the single route (duplicate fields, big numbers...).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    jobs: Vec<RawBatchJob>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatchJob {
    kind: String,
    payload: Box<serde_json::value::RawValue>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// Enqueues many jobs of any kinds. The document as a whole is refused (400) when it is
/// malformed or longer than [`MAX_BATCH_JOBS`]; otherwise each job is checked as the single
/// route checks it (the token's scope, the payload, the key) and the valid ones are
/// recorded in one transaction. 202 with one result per job, in order.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    request_body = BatchRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Read: one result per job, in order, each accepted (`job_id`, `created`) or refused (`error`, `field`, `status`: 400, 403 or 409, as the single route would answer)", body = BatchResponse),
        (status = 400, description = "Not a batch document (malformed, a payload that is not an object, an unknown field) or more than 1,000 jobs: nothing enqueued", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 413, description = "Body larger than 4 MiB", body = ErrorBody),
        (status = 415, description = "Body not JSON", body = ErrorBody),
        (status = 503, description = "The job store is unavailable: nothing enqueued; send the batch again (with idempotency keys, a job already recorded answers `created: false`)", body = ErrorBody),
    )
)]
pub async fn enqueue_batch(
    State(app): State<Arc<App>>,
    Extension(scope): Extension<Arc<TokenScope>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    require_json(&headers)?;
    let body = read_body(body, MAX_BATCH_BODY_BYTES)?;
    let json =
        std::str::from_utf8(&body).map_err(|_| InvalidPayload::new("jobs", "is not UTF-8 text"))?;
    let batch: RawBatch = serde_json::from_str(json).map_err(|error| {
        let refusal = InvalidPayload::from_json(error);
        let field = if refusal.field == "payload" {
            "jobs".to_string()
        } else {
            refusal.field
        };
        InvalidPayload::new(field, refusal.reason)
    })?;
    if batch.jobs.len() > MAX_BATCH_JOBS {
        return Err(InvalidPayload::new(
            "jobs",
            format!(
                "holds {} jobs, more than {MAX_BATCH_JOBS}: split the batch",
                batch.jobs.len()
            ),
        )
        .into());
    }
    // The document's shape: a payload is an object, as the schema says; any other value
    // refuses the document, not the item.
    if let Some(position) = batch
        .jobs
        .iter()
        .position(|job| !job.payload.get().trim_start().starts_with('{'))
    {
        return Err(InvalidPayload::new(
            "jobs",
            format!("jobs[{position}].payload must be a JSON object"),
        )
        .into());
    }
    let mut results: Vec<Option<BatchItem>> = Vec::with_capacity(batch.jobs.len());
    let mut requests = Vec::new();
    let mut positions = Vec::new();
    for (position, job) in batch.jobs.iter().enumerate() {
        match batch_request(&scope, job, app.clock.now()) {
            Ok(request) => {
                results.push(None);
                requests.push(request);
                positions.push(position);
            }
            Err(refusal) => results.push(Some(refusal.refusal())),
        }
    }
    let answers = app.queue.enqueue_each(requests).await?;
    for (position, answer) in positions.into_iter().zip(answers) {
        results[position] = Some(match answer {
            Ok(enqueued) => BatchItem::Enqueued(Enqueued {
                job_id: enqueued.id,
                created: enqueued.created,
            }),
            Err(QueueError::IdempotencyConflict { key, job_id }) => {
                ApiError::Conflict { key, job_id }.refusal()
            }
            Err(other) => return Err(ApiError::Queue(other)),
        });
    }
    let results = results.into_iter().flatten().collect();
    Ok((StatusCode::ACCEPTED, Json(BatchResponse { results })))
}

/// One job of a batch checked as the single route checks it, in the same order: the kind
/// against the token, the key, the payload, the account and the actor.
fn batch_request(
    scope: &TokenScope,
    job: &RawBatchJob,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<EnqueueRequest, ApiError> {
    if let Some(name) = lifecycle_jobs::kind_name(&job.kind) {
        scope.may_enqueue(name)?;
    }
    let key = job
        .idempotency_key
        .as_deref()
        .map(|key| checked_key("idempotency_key", key))
        .transpose()?;
    let validated = lifecycle_jobs::validate_json(&job.kind, job.payload.get())?;
    validated.check_requested_at(now)?;
    scope.may_use_account(validated.account_id)?;
    if acts_as_system(&validated.payload) {
        scope.may_act_as_system()?;
    }
    Ok(EnqueueRequest {
        kind: validated.name,
        account_id: Some(validated.account_id),
        payload: validated.payload,
        idempotency_key: key.map(IdempotencyKey::Caller),
        run_at_ms: None,
    })
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
    fn a_service_token_carries_its_scope() {
        let http = HttpSettings {
            bind: String::new(),
            api_tokens: vec![Secret::new("dev".into())],
            tokens: vec![ServiceToken {
                name: "auth-service".into(),
                sha256: lifecycle_jobs::sha256_hex("auth-secret"),
                kinds: vec!["record-login".into()],
                system: false,
                accounts: Some(vec![2]),
                check_tokens: false,
            }],
        };
        let tokens = ApiTokens::from_settings(&http);
        let auth = tokens.scope_of("auth-secret").unwrap();
        assert_eq!(auth.name, "auth-service");
        assert!(auth.may_enqueue("user::record_login").is_ok());
        assert!(auth.may_enqueue("user::deactivate").is_err());
        assert!(auth.may_enqueue("mail::send").is_err());
        assert!(auth.may_use_account(2).is_ok());
        assert!(auth.may_use_account(1).is_err());
        assert!(auth.may_act_as_system().is_err());
        let dev = tokens.scope_of("dev").unwrap();
        assert!(dev.may_act_as_system().is_ok() && dev.check_tokens);
        assert!(
            dev.may_enqueue("system::noop").is_err(),
            "internal for everyone"
        );
        assert!(tokens.scope_of("auth-secret ").is_none());
    }

    #[test]
    fn system_actor_is_read_from_the_canonical_payload() {
        assert!(acts_as_system(
            r#"{"account_id":1,"user_id":2,"actor":"system"}"#
        ));
        assert!(!acts_as_system(r#"{"account_id":1,"user_id":2,"actor":7}"#));
        assert!(!acts_as_system(r#"{"account_id":1,"user_id":2}"#));
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
