//! The enqueue routes: `POST /v1/jobs/{kind}` hands one job over, `POST /v1/jobs` many.
//! Each job is checked in the same order on both: the kind against the token, the key,
//! the payload, the account and the actor.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use lifecycle_jobs::{
    BatchItem, BatchRequest, BatchResponse, Enqueued, InvalidPayload, MAX_BATCH_JOBS,
    MAX_PAYLOAD_BYTES,
};
use uuid::Uuid;

use super::request::{acts_as_system, checked_key, idempotency_key, read_body, require_json};
use super::{ApiError, ErrorBody, TokenScope};
use crate::App;
use crate::http::json_object::JsonObject;
use crate::queue::{EnqueueRequest, IdempotencyKey, QueueError};

/// Enqueues a job of `kind` (a slug such as `deactivate-user`) with the body as payload.
/// Documented per kind in [`crate::http::openapi`], each with its payload schema.
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

/// The body limit of `POST /v1/jobs`: 1,000 jobs of up to about 4 KiB each.
pub const MAX_BATCH_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A batch as read off the wire: each payload kept as sent, so that it goes through the
/// same decoding as the body of the single route (duplicate fields, big numbers...).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    jobs: Vec<JsonObject<RawBatchJob>>,
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
    let JsonObject(batch) =
        serde_json::from_str::<JsonObject<RawBatch>>(json).map_err(|error| {
            let refusal = InvalidPayload::from_json(error);
            let field = if refusal.field == "payload" {
                "jobs".to_string()
            } else {
                refusal.field
            };
            InvalidPayload::new(field, refusal.reason)
        })?;
    let jobs: Vec<RawBatchJob> = batch.jobs.into_iter().map(|JsonObject(job)| job).collect();
    if jobs.len() > MAX_BATCH_JOBS {
        return Err(InvalidPayload::new(
            "jobs",
            format!(
                "holds {} jobs, more than {MAX_BATCH_JOBS}: split the batch",
                jobs.len()
            ),
        )
        .into());
    }
    // The document's shape: a payload is an object, as the schema says; any other value
    // refuses the document, not the item.
    if let Some(position) = jobs
        .iter()
        .position(|job| !job.payload.get().trim_start().starts_with('{'))
    {
        return Err(InvalidPayload::new(
            "jobs",
            format!("jobs[{position}].payload must be a JSON object"),
        )
        .into());
    }
    let mut results: Vec<Option<BatchItem>> = Vec::with_capacity(jobs.len());
    let mut requests = Vec::new();
    let mut positions = Vec::new();
    for (position, job) in jobs.iter().enumerate() {
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
