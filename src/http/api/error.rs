//! The refusals of the API: [`ApiError`] says why a request was not served, maps to one
//! status code and answers in JSON ([`ErrorBody`]); a batch item refused carries the same
//! body and status as the single route would answer.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lifecycle_jobs::{BatchItem, BatchRefusal, InvalidPayload};
use serde::Serialize;
use uuid::Uuid;

use crate::queue::QueueError;
use crate::store::StoreError;

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
    pub(super) fn refusal(self) -> BatchItem {
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
