//! The queue: the ledger in the database records every accepted job; a transport carries
//! it to the workers: the ledger table itself (`database`, the embedded default) or Redis
//! Streams (`redis`, production). Workers are apalis 1.0 workers over either.
//!
//! [`Queue`] is one handle; its methods live with their concern: `enqueue` (requests
//! recorded, group commit, pushes), `reader` (fetch and claim), `settle` (outcomes),
//! `reconcile` (the ledger against Redis), `maintenance` (outbox, events, pruning),
//! `lifeline` (heartbeats, dead processes). Which transport carries the jobs is known to
//! `transport` (and `redis`) alone.

pub mod admin;
pub mod breaker_hold;
mod enqueue;
pub mod lifeline;
pub mod maintenance;
mod paused;
mod reader;
mod reconcile;
pub mod redis;
pub mod retry;
mod settle;
mod transport;
pub mod worker;

use std::time::Duration;

use uuid::Uuid;

use crate::clock::Clock;
use crate::config::QueueSettings;
use crate::store::{Store, StoreError};
use enqueue::{Enqueuer, PushMarks};
use paused::PausedKinds;
use retry::RetryPolicy;
use transport::Transport;

pub use crate::store::ledger::IdempotencyKey;
pub use enqueue::{AfterCommit, EnqueueRequest, Enqueued};
pub use reader::{Delivery, Reader};
pub use settle::AttemptResult;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("cannot encode a job: {0}")]
    Encode(serde_json::Error),
    #[error("could not record the outcome of the attempt: {0}")]
    Settle(String),
    #[error("could not record the job: {0}")]
    Record(String),
    /// The key was already used for another job (another kind or payload) of the same
    /// account: nothing was recorded. A producer's retry sends the same job again and gets
    /// `created: false`; a different job needs a key of its own.
    #[error(
        "idempotency key {key} already used by job {job_id} with another kind or payload; \
         nothing enqueued"
    )]
    IdempotencyConflict { key: String, job_id: Uuid },
    /// A producer's key is scoped to an account: a job without one cannot carry it.
    #[error("idempotency key {0} needs the job's account: producer keys are scoped to it")]
    KeyWithoutAccount(String),
}

#[derive(Clone, Debug)]
pub struct Queue {
    store: Store,
    transport: Transport,
    pub(crate) settings: QueueSettings,
    policy: RetryPolicy,
    clock: Clock,
    /// Records pushes in the background (Redis transport).
    push_marks: Option<PushMarks>,
    /// Gathers concurrent single enqueues (PostgreSQL).
    enqueuer: Option<Enqueuer>,
    /// The job kinds operators paused, cached for the fetch path.
    paused: PausedKinds,
}

impl Queue {
    pub async fn connect(
        store: Store,
        settings: &QueueSettings,
        clock: Clock,
    ) -> Result<Self, QueueError> {
        let transport = Transport::connect(settings).await?;
        let push_marks = transport.pushes().then(|| PushMarks::spawn(store.clone()));
        let mut queue = Self {
            push_marks,
            enqueuer: None,
            paused: PausedKinds::default(),
            store,
            transport,
            policy: RetryPolicy {
                max_attempts: settings.max_attempts.max(1),
                base: Duration::from_millis(settings.backoff_base_ms),
                cap: Duration::from_secs(settings.backoff_cap_secs),
            },
            settings: settings.clone(),
            clock,
        };
        // SQLite has one writer anyway and no round trips to save.
        if matches!(queue.store, Store::Postgres(_)) {
            queue.enqueuer = Some(Enqueuer::spawn(queue.clone()));
        }
        Ok(queue)
    }

    /// Whether events go out on a Redis stream (else the `events` table is the feed).
    pub fn publishes_events(&self) -> bool {
        self.transport.publishes_events()
    }

    /// The retry policy of a job kind: the queue's, with what `queue.kinds` sets for it.
    pub fn policy_for(&self, kind: &str) -> RetryPolicy {
        let Some(own) = self.settings.kinds.get(kind) else {
            return self.policy;
        };
        RetryPolicy {
            max_attempts: own.max_attempts.unwrap_or(self.policy.max_attempts).max(1),
            base: own
                .backoff_base_ms
                .map_or(self.policy.base, Duration::from_millis),
            cap: own
                .backoff_cap_secs
                .map_or(self.policy.cap, Duration::from_secs),
        }
    }
}
