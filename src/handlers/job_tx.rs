//! The job transaction: the one write transaction a job's effects are applied in, and the
//! record of what those effects cause beyond their own rows (the jobs that follow, among
//! them the SendEmail of every email recorded; whom the job turned out to be about, for its
//! event). The registry commits it once ([`super::registry`]): the mark that the job was
//! applied, its event, its follow-up jobs and its rows all commit together or not at all.
//!
//! A handler sees only this and a [`JobContext`] (the clock, the policy, the job's id): no
//! queue, no mailer. A test can run one directly and look at what it recorded.

use std::ops::{Deref, DerefMut};

use chrono::{DateTime, Utc};
use lifecycle_jobs::Job;
use uuid::Uuid;

use super::JobError;
use crate::clock::Clock;
use crate::config::Settings;
use crate::store::audit::{self, AuditStamp, Audited, BatchStamp, Changed};
use crate::store::{Store, StoreError, Tx, ledger};

/// What a handler runs with besides its transaction.
#[derive(Clone, Copy)]
pub struct JobContext<'a> {
    pub clock: &'a Clock,
    pub settings: &'a Settings,
    pub job_id: Uuid,
    /// When the service recorded the job (the ledger's `created_at_ms`): what a job billed
    /// by the cycle counts from, however late it runs (a backlog, a retry). `None` for an
    /// attempt run outside the queue; then it counts from now.
    pub enqueued_at: Option<DateTime<Utc>>,
}

impl JobContext<'_> {
    /// When the service recorded this job, or now when that is not known.
    pub fn enqueued_at_or_now(&self) -> DateTime<Utc> {
        self.enqueued_at.unwrap_or_else(|| self.clock.now())
    }

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

/// A job another job calls for, recorded in its transaction: it exists exactly when the
/// change that called for it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowUp {
    pub kind: &'static str,
    pub account_id: i64,
    /// The payload, its secrets sealed ([`Job::seal`]).
    pub payload: String,
    /// In the service's own key space: no producer's key can take it first, and the same
    /// follow-up recorded twice is one job.
    pub key: String,
    /// When it may run; `None`: at once.
    pub run_at: Option<DateTime<Utc>>,
}

/// The job's write transaction and what its effects cause. Derefs to the store's [`Tx`],
/// so the store's functions take it as they are.
pub struct JobTx {
    tx: Tx,
    job_id: Uuid,
    account_id: i64,
    user_id: Option<i64>,
    follow_ups: Vec<FollowUp>,
    /// A batch of a job that commits in many transactions (a sweep): the audit rows it
    /// wrote ([`JobTx::audit_batch`]), which its events list; no applied mark is written.
    /// `None` outside a batch.
    batch: Option<Vec<BatchChange>>,
}

/// An audit row a batch wrote, as its event lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchChange {
    pub audited: Audited,
    pub entity: &'static str,
    pub action: &'static str,
}

/// A committed-to-be job transaction taken apart, for the registry to commit.
pub struct JobTxParts {
    pub tx: Tx,
    pub job_id: Uuid,
    pub account_id: i64,
    pub user_id: Option<i64>,
    pub follow_ups: Vec<FollowUp>,
    pub batch: Option<Vec<BatchChange>>,
}

impl JobTx {
    /// Opens job `job_id`'s transaction, about `account_id` (and `user_id`, when known), or
    /// `None` when its effects were applied before (a redelivery): then it changes nothing.
    pub async fn begin(
        store: &Store,
        job_id: Uuid,
        (account_id, user_id): (i64, Option<i64>),
    ) -> Result<Option<Self>, StoreError> {
        let mut tx = store.begin().await?;
        if ledger::already_applied(&mut tx, job_id).await? {
            return Ok(None);
        }
        Ok(Some(Self {
            tx,
            job_id,
            account_id,
            user_id,
            follow_ups: Vec::new(),
            batch: None,
        }))
    }

    /// Opens one batch of job `job_id`, a job that commits its effects in many short
    /// transactions (a sweep), possibly in many accounts: its event is one per account its
    /// rows changed. A batch is idempotent by its own statements (each change is guarded by
    /// the state it leaves), not by the job's applied mark: a rerun after a crash finishes
    /// what the batches before did not, and changes nothing twice. A batch audits through
    /// [`JobTx::audit_batch`], so that its events list what it changed and nothing another
    /// batch of the same job committed meanwhile (batches may run side by side).
    pub async fn begin_batch(store: &Store, job_id: Uuid) -> Result<Self, StoreError> {
        Ok(Self {
            tx: store.begin().await?,
            job_id,
            account_id: 0,
            user_id: None,
            follow_ups: Vec::new(),
            batch: Some(Vec::new()),
        })
    }

    /// Audits `changed` (rows of `entity`, in any accounts, each changed by `action`) in
    /// this transaction; in a batch, its events list them. Returns how many rows.
    pub async fn audit_batch(
        &mut self,
        stamp: &BatchStamp,
        entity: &'static str,
        action: &'static str,
        changed: &[Changed],
    ) -> Result<u64, StoreError> {
        let audited =
            audit::record_changed_across(&mut self.tx, stamp, entity, action, changed).await?;
        let count = audited.len() as u64;
        if let Some(batch) = &mut self.batch {
            batch.extend(audited.into_iter().map(|audited| BatchChange {
                audited,
                entity,
                action,
            }));
        }
        Ok(count)
    }

    /// Records that the job turned out to be about `user_id` (a user it created, a buyer it
    /// found): the subject of its event and span.
    pub fn about_user(&mut self, user_id: i64) {
        self.user_id = Some(user_id);
        tracing::Span::current().record("user_id", user_id);
    }

    /// Records `job` to run once this transaction commits (at `run_at`, or at once), under
    /// the service's own idempotency `key`.
    pub fn enqueue<J: Job>(
        &mut self,
        job: &J,
        key: String,
        run_at: Option<DateTime<Utc>>,
    ) -> Result<(), JobError> {
        let mut sealed = job.clone();
        sealed.seal();
        let payload = serde_json::to_string(&sealed)
            .map_err(|error| JobError::Precondition(format!("cannot encode a job: {error}")))?;
        self.follow_ups.push(FollowUp {
            kind: J::NAME,
            account_id: job.account_id(),
            payload,
            key,
            run_at,
        });
        Ok(())
    }

    /// The jobs recorded so far, in order.
    pub fn follow_ups(&self) -> &[FollowUp] {
        &self.follow_ups
    }

    pub fn job_id(&self) -> Uuid {
        self.job_id
    }

    /// The account and user the job is about, as far as known.
    pub fn subject(&self) -> (i64, Option<i64>) {
        (self.account_id, self.user_id)
    }

    pub fn into_parts(self) -> JobTxParts {
        JobTxParts {
            tx: self.tx,
            job_id: self.job_id,
            account_id: self.account_id,
            user_id: self.user_id,
            follow_ups: self.follow_ups,
            batch: self.batch,
        }
    }
}

impl Deref for JobTx {
    type Target = Tx;

    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl DerefMut for JobTx {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}
