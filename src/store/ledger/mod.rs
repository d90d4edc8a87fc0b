//! The job ledger: every accepted job with its state, attempts and errors, and the marker
//! that a job's effects were applied. Times are epoch milliseconds.
//!
//! The types every caller shares live here; the statements are split by who runs them:
//! producers record jobs (`insert`), workers claim and settle them
//! (`claim`, `settle`, `requeue`), a delivery waits for the transaction recording its job
//! (`recording`), handlers mark their effects applied (`applied`), the
//! reconciler keeps the transport in step (`reconcile`), and operators read and prune
//! (`history`). Every function is re-exported here, so callers name `ledger::X` whatever file
//! it is in.

mod applied;
mod claim;
mod history;
mod insert;
mod reconcile;
mod recording;
mod requeue;
mod settle;

use uuid::Uuid;

pub use applied::{already_applied, mark_applied};
pub use claim::{claim_delivered, claim_due, renew_claim, unclaim};
pub use history::{
    PruneCutoffs, count_all, count_in_state, count_prunable, get, prune, prune_finished,
};
pub use insert::{insert, insert_many, insert_many_now};
pub use reconcile::{
    UnpushedJob, forget_pushed, mark_pushed, mark_pushed_in, queue_epoch, record_queue_epoch,
    unpushed,
};
pub use recording::{await_recordings, hold_recording};
pub use requeue::{requeue, requeue_failed, requeue_held_by, requeue_stale};
pub use settle::{Settlement, settle_many};

/// The lifecycle of a ledger row.
pub mod state {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
    pub const DEAD: &str = "dead";
}

/// The idempotency key of a job. A producer's key (HTTP, client, CLI, an outbox row) is
/// scoped to the job's account: two tenants may both send `K-1`. The keys the service
/// derives for its own follow-up jobs (`mail::send:<email>`, `license::release:…`,
/// `outbox:<row>`) live in a space of their own (another column, another unique index),
/// so no producer's key can ever take one of them first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IdempotencyKey {
    /// A producer's key, unique per account.
    Caller(String),
    /// A key the service derives for a job it records itself, unique across the ledger.
    Internal(String),
}

impl IdempotencyKey {
    /// A key the service derives for a job it records itself.
    pub fn internal(key: impl Into<String>) -> Self {
        IdempotencyKey::Internal(key.into())
    }

    pub fn as_str(&self) -> &str {
        match self {
            IdempotencyKey::Caller(key) | IdempotencyKey::Internal(key) => key,
        }
    }

    fn caller(&self) -> Option<&str> {
        match self {
            IdempotencyKey::Caller(key) => Some(key),
            IdempotencyKey::Internal(_) => None,
        }
    }

    fn internal_key(&self) -> Option<&str> {
        match self {
            IdempotencyKey::Internal(key) => Some(key),
            IdempotencyKey::Caller(_) => None,
        }
    }
}

/// A plain string is a producer's key: the safe default, scoped to the account. An internal
/// key is only ever made on purpose, with [`IdempotencyKey::internal`].
impl From<String> for IdempotencyKey {
    fn from(key: String) -> Self {
        IdempotencyKey::Caller(key)
    }
}

impl From<&str> for IdempotencyKey {
    fn from(key: &str) -> Self {
        IdempotencyKey::Caller(key.to_string())
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to record in the ledger.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub kind: String,
    pub account_id: Option<i64>,
    pub payload: String,
    pub idempotency_key: Option<IdempotencyKey>,
    pub max_attempts: i32,
    pub run_at_ms: i64,
    pub created_at_ms: i64,
    /// Set when the transport holds the job once the row commits (the database transport);
    /// `None` until a push to Redis succeeds.
    pub pushed_at_ms: Option<i64>,
}

/// A job as the queue hands it to a worker.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub kind: String,
    pub payload: String,
    /// The attempt now starting, from 1.
    pub attempts: i32,
    pub max_attempts: i32,
    /// When the service recorded the job (its clock, ms): when it was asked for, however
    /// late it runs.
    pub created_at_ms: i64,
}

/// A ledger row, for `jobs show`, the API and tests.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRecord {
    pub id: Uuid,
    pub kind: String,
    pub account_id: Option<i64>,
    pub payload: String,
    /// The producer's idempotency key (scoped to the account), if it sent one.
    pub idempotency_key: Option<String>,
    /// The key the service derived for a job it recorded itself (`mail::send:<email>`).
    pub internal_key: Option<String>,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at_ms: i64,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

/// What recording a job did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The job is recorded under its own id.
    Created(Uuid),
    /// Its key was already used by this job, of the same kind and payload (a producer's
    /// retry): nothing recorded.
    Existing(Uuid),
    /// Its key was already used by this job, of another kind or payload: nothing recorded.
    /// A different job under a used key is a producer's mistake, not a retry, and must not
    /// pass for one.
    Conflict(Uuid),
}

impl Recorded {
    /// The job that holds the key (or the new job).
    pub fn id(self) -> Uuid {
        match self {
            Recorded::Created(id) | Recorded::Existing(id) | Recorded::Conflict(id) => id,
        }
    }
}

/// "$from, $from+1, …": the placeholders of a list of `count` values.
fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
