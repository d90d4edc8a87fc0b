//! One file per job kind: load, check the guards, apply the effects in one transaction.
//! [`run`] is the one place a job kind's name meets its handler.

pub mod deactivate_salesperson;
pub mod release_license;

use lifecycle_jobs::{DeactivateSalesperson, InvalidPayload, Job, Noop, ReleaseLicense, decode};
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::guards::GuardRefusal;
use crate::queue::{AttemptResult, Queue, QueueError};
use crate::store::audit::AuditStamp;
use crate::store::{Store, StoreError};

/// Why a job failed. Bad input and refusals are permanent: retrying cannot help. The store
/// and the queue failing is transient: the job runs again later.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Refused(#[from] GuardRefusal),
    #[error(transparent)]
    InvalidPayload(#[from] InvalidPayload),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Precondition(String),
    #[error("unknown job kind {0:?}")]
    UnknownKind(String),
    #[error("{0}")]
    NotYetDue(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl JobError {
    pub fn is_permanent(&self) -> bool {
        match self {
            JobError::Refused(_)
            | JobError::InvalidPayload(_)
            | JobError::NotFound(_)
            | JobError::Precondition(_)
            | JobError::UnknownKind(_) => true,
            JobError::NotYetDue(_) | JobError::Store(_) | JobError::Queue(_) => false,
        }
    }

    pub fn to_attempt_result(&self) -> AttemptResult {
        if self.is_permanent() {
            AttemptResult::Permanent(self.to_string())
        } else {
            AttemptResult::Transient(self.to_string())
        }
    }
}

/// How a job ended when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its effects were applied now.
    Applied,
    /// A replay: the effects of this job id were applied before; nothing changed.
    AlreadyApplied,
    /// Nothing to do, and why.
    NothingToDo(String),
}

/// What a handler runs with.
pub struct JobContext<'a> {
    pub store: &'a Store,
    pub queue: &'a Queue,
    pub clock: &'a Clock,
    pub job_id: Uuid,
}

impl JobContext<'_> {
    /// The stamp of this job's audit rows.
    pub fn audit_stamp(&self, account_id: i64, actor: impl ToString) -> AuditStamp {
        AuditStamp {
            account_id,
            actor: actor.to_string(),
            job_id: self.job_id,
            at: self.clock.now(),
        }
    }
}

/// Decodes the payload of a job of kind `kind` and runs its handler.
pub async fn run(ctx: &JobContext<'_>, kind: &str, payload: &str) -> Result<Outcome, JobError> {
    match kind {
        DeactivateSalesperson::NAME => {
            let job: DeactivateSalesperson = decode(payload)?;
            record_span_fields(&job, Some(job.user_id));
            deactivate_salesperson::run(ctx, &job).await
        }
        ReleaseLicense::NAME => {
            let job: ReleaseLicense = decode(payload)?;
            record_span_fields(&job, None);
            release_license::run(ctx, &job).await
        }
        Noop::NAME => {
            let job: Noop = decode(payload)?;
            record_span_fields(&job, None);
            Ok(Outcome::NothingToDo("noop".into()))
        }
        other => Err(JobError::UnknownKind(other.to_string())),
    }
}

fn record_span_fields<J: Job>(job: &J, user_id: Option<i64>) {
    let span = tracing::Span::current();
    span.record("account_id", job.account_id());
    if let Some(user_id) = user_id {
        span.record("user_id", user_id);
    }
}
