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
