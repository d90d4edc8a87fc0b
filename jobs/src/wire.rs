//! What the enqueue API answers, shared by the service that writes it and the client that
//! reads it, so the two cannot drift apart.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The answer to an accepted enqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Enqueued {
    /// The job's id, to follow it with `GET /v1/jobs/{id}`.
    pub job_id: Uuid,
    /// `false` when the idempotency key was already used: `job_id` is that earlier job and
    /// nothing new was enqueued.
    pub created: bool,
}

/// A job as the service shows it. Times are epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct JobStatus {
    /// The job's id.
    pub id: Uuid,
    /// The kind's stable name (`user::deactivate`).
    pub kind: String,
    /// `queued`, `running`, `done` or `dead`.
    pub state: String,
    /// Attempts started so far.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// The error of the last failed attempt (a refusal's reason for a dead job).
    pub last_error: Option<String>,
    /// When it was accepted.
    pub created_at_ms: i64,
    /// When it ended as `done` or `dead`.
    pub finished_at_ms: Option<i64>,
}

/// The most jobs one `POST /v1/jobs` takes; a longer batch is refused as a whole.
pub const MAX_BATCH_JOBS: usize = 1000;

/// `POST /v1/jobs`: many jobs, of any kinds, in one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// At most 1,000 jobs; each is answered on its own, in the same order.
    #[cfg_attr(feature = "utoipa", schema(max_items = 1000))]
    pub jobs: Vec<BatchJob>,
}

/// One job of a batch: what `POST /v1/jobs/{kind}` takes in its path, body and header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchJob {
    /// The kind's slug (`deactivate-user`) or stable name (`user::deactivate`); an unknown
    /// or internal kind refuses this item only.
    pub kind: String,
    /// The payload of the kind (the body of `POST /v1/jobs/{kind}`); an invalid one
    /// refuses this item only, naming the field.
    #[cfg_attr(feature = "utoipa", schema(value_type = Object))]
    pub payload: serde_json::Map<String, serde_json::Value>,
    /// As the `Idempotency-Key` header of the single route, scoped to the payload's
    /// account; a key holding another job refuses this item only (status 409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl BatchJob {
    /// The item for `job` of kind `J`, with an optional idempotency key.
    pub fn new<J: crate::Job>(
        job: &J,
        idempotency_key: Option<&str>,
    ) -> Result<Self, crate::InvalidPayload> {
        let payload = match serde_json::to_value(job) {
            Ok(serde_json::Value::Object(payload)) => payload,
            Ok(_) => return Err(crate::InvalidPayload::new("payload", "is not an object")),
            Err(error) => return Err(crate::InvalidPayload::new("payload", error.to_string())),
        };
        Ok(Self {
            kind: J::SLUG.to_string(),
            payload,
            idempotency_key: idempotency_key.map(str::to_string),
        })
    }
}

/// The answer to a batch that was read: one result per job, in the order sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct BatchResponse {
    /// The jobs' results, in order.
    pub results: Vec<BatchItem>,
}

/// What became of one job of a batch: accepted (`job_id`, `created`) or refused (`error`,
/// `field`, `status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum BatchItem {
    /// Accepted, as by `POST /v1/jobs/{kind}`.
    Enqueued(Enqueued),
    /// Refused; nothing enqueued for this job.
    Refused(BatchRefusal),
}

/// Why one job of a batch was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct BatchRefusal {
    /// What is wrong.
    pub error: String,
    /// The field at fault (`user_id`, `kind`, `idempotency_key`, `account_id`, `actor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The status the single route would answer: 400 (bad input), 403 (outside the
    /// token's scope) or 409 (the idempotency key holds another job).
    pub status: u16,
    /// For a 409: the job that holds the idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
}
