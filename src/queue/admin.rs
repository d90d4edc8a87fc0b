//! The operator's actions on the queue (the CLI's `jobs retry|discard|pause|resume` and the
//! `/admin` dashboard's buttons): each checks its input, acts through the normal paths, and
//! is recorded in `operator_actions` with who did it, in the transaction that does it.

use std::fmt;

use uuid::Uuid;

use super::redis::Message;
use super::{Queue, QueueError};
use crate::metrics::{METRICS, Outcome};
use crate::store::admin::{self, JobFilter, NewOperatorAction};
use crate::store::{StoreError, ledger};

/// How many jobs a bulk retry queues per transaction. Each batch costs a few round trips
/// (the ids, the UPDATE, the action row, the commit, the push, its mark) besides its rows:
/// 50,000 dead jobs took 1.1 s in batches of 500, 0.77 s of 2,000, 0.68 s of 5,000 (the
/// bare UPDATE: 0.34 s). A batch still holds its rows' locks only for tens of milliseconds.
pub const RETRY_BATCH: i64 = 5000;

/// Who acts: an operator's name as the audit trail shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator(String);

impl Operator {
    /// A name of 1 to 100 printable characters.
    pub fn new(name: &str) -> Result<Self, AdminError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AdminError::InvalidOperator(name.to_string()));
        }
        Ok(Operator(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("invalid operator name {0:?}: 1 to 100 printable characters")]
    InvalidOperator(String),
    #[error("unknown job kind {0:?}: use a kind's name or slug (`lifecycle jobs list` shows them)")]
    UnknownKind(String),
    #[error("a reason is required to discard a job")]
    MissingReason,
    #[error("no job {0}")]
    NoSuchJob(Uuid),
    #[error("job {id} is {state}: only a queued, retrying or dead job can be discarded")]
    NotDiscardable { id: Uuid, state: String },
    #[error("retry --all needs --state dead, discarded or retrying (got {0})")]
    NotRetryableState(String),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<StoreError> for AdminError {
    fn from(error: StoreError) -> Self {
        AdminError::Queue(QueueError::Store(error))
    }
}

/// What a retry did: the jobs queued again, and those left alone (running, done, unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retried {
    pub queued: Vec<Uuid>,
    pub skipped: Vec<Uuid>,
}

impl Queue {
    /// Runs `ids` again now, through the normal path (guards re-checked, effects applied
    /// once), keeping their history. Only dead, discarded and retrying jobs are retried.
    pub async fn retry_jobs(
        &self,
        operator: &Operator,
        ids: &[Uuid],
    ) -> Result<Retried, AdminError> {
        let queued = self.requeue_recorded(operator, "retry", ids, None).await?;
        let skipped = ids
            .iter()
            .filter(|id| !queued.contains(id))
            .copied()
            .collect();
        Ok(Retried { queued, skipped })
    }

    /// Retries every job matching `filter` (its state must be dead, discarded or retrying,
    /// or the filter only the failed ones), in batches of [`RETRY_BATCH`], each recorded.
    /// Returns how many were queued.
    pub async fn retry_matching(
        &self,
        operator: &Operator,
        filter: &JobFilter,
    ) -> Result<u64, AdminError> {
        self.retry_matching_at_most(operator, filter, u64::MAX)
            .await
    }

    /// [`Queue::retry_matching`], queueing at most `limit` jobs: the dashboard retries no
    /// more than the count its operator confirmed, even when more jobs died since.
    pub async fn retry_matching_at_most(
        &self,
        operator: &Operator,
        filter: &JobFilter,
        limit: u64,
    ) -> Result<u64, AdminError> {
        use crate::store::admin::JobState;
        match filter.state {
            Some(JobState::Dead | JobState::Discarded | JobState::Retrying) => {}
            None if filter.failed => {}
            other => {
                return Err(AdminError::NotRetryableState(
                    other.map_or("no state".to_string(), |state| state.to_string()),
                ));
            }
        }
        let target = serde_json::to_string(filter).map_err(QueueError::Encode)?;
        let mut after = None;
        let mut total = 0;
        while total < limit {
            let batch = RETRY_BATCH.min(i64::try_from(limit - total).unwrap_or(RETRY_BATCH));
            let now_ms = self.clock.now_ms();
            let (ids, next) =
                admin::matching_ids(&self.store, filter, after, batch, now_ms).await?;
            if ids.is_empty() {
                break;
            }
            let queued = self
                .requeue_recorded(operator, "retry-all", &ids, Some(&target))
                .await?;
            total += queued.len() as u64;
            if (ids.len() as i64) < batch {
                break;
            }
            after = next;
        }
        Ok(total)
    }

    /// Queues the retryable jobs of `ids` and records the action in one transaction, and
    /// hands them to the transport before it commits. Returns the ids queued.
    ///
    /// Pushed before the commit, a row is written once, already marked pushed: marked after
    /// the push, as a new job is, each retried row was written twice, and a bulk retry took
    /// twice the bare UPDATE. The order is safe because these rows exist: a delivery read
    /// before the commit waits for it in the claim ([`ledger::claim_delivered`]), and after
    /// a rollback (or a crash before the commit) finds the row still dead and is dropped. A
    /// push that fails leaves the rows unmarked, for the reconciler.
    async fn requeue_recorded(
        &self,
        operator: &Operator,
        action: &str,
        ids: &[Uuid],
        filter: Option<&str>,
    ) -> Result<Vec<Uuid>, AdminError> {
        let now_ms = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let jobs = ledger::requeue_failed(&mut tx, ids, now_ms, Some(now_ms)).await?;
        let queued: Vec<Uuid> = jobs.iter().map(|job| job.id).collect();
        if queued.is_empty() {
            tx.rollback().await?;
            return Ok(queued);
        }
        let target = match filter {
            Some(filter) => filter.to_string(),
            None => serde_json::to_string(&queued).map_err(QueueError::Encode)?,
        };
        admin::record_action(
            &mut tx,
            &NewOperatorAction {
                operator: operator.as_str(),
                action,
                target,
                job_count: queued.len() as i64,
                reason: None,
                at_ms: now_ms,
            },
        )
        .await?;
        if self.transport.pushes() {
            let messages: Vec<(Message, i64)> = jobs
                .iter()
                .map(|job| (Message::of(job, job.attempts), now_ms))
                .collect();
            if let Err(error) = self.transport.push(&messages, now_ms).await {
                tracing::warn!(%error, "could not push retried jobs; the reconciler will");
                ledger::mark_pushed_in(&mut tx, &queued, None).await?;
            }
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Gives up on a queued, retrying or dead job, for `reason`: final state `discarded`,
    /// its history kept. A running job cannot be discarded (its worker settles it).
    pub async fn discard_job(
        &self,
        operator: &Operator,
        id: Uuid,
        reason: &str,
    ) -> Result<(), AdminError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AdminError::MissingReason);
        }
        let now_ms = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let note = format!("discarded by {operator}: {reason}");
        let Some(kind) = admin::discard(&mut tx, id, &note, now_ms).await? else {
            tx.rollback().await?;
            return Err(match ledger::get(&self.store, id).await? {
                None => AdminError::NoSuchJob(id),
                Some(job) => AdminError::NotDiscardable {
                    id,
                    state: job.state,
                },
            });
        };
        admin::record_action(
            &mut tx,
            &NewOperatorAction {
                operator: operator.as_str(),
                action: "discard",
                target: serde_json::to_string(&[id]).map_err(QueueError::Encode)?,
                job_count: 1,
                reason: Some(reason),
                at_ms: now_ms,
            },
        )
        .await?;
        tx.commit().await?;
        METRICS.processed(&kind, Outcome::Discarded);
        Ok(())
    }

    /// Pauses a job kind (its name or slug): no worker starts its jobs until it is resumed;
    /// they wait, queued. Returns the kind's name and whether it was running before.
    pub async fn pause_kind(
        &self,
        operator: &Operator,
        kind: &str,
    ) -> Result<(&'static str, bool), AdminError> {
        self.set_paused(operator, kind, true).await
    }

    /// Resumes a paused job kind. Returns the kind's name and whether it was paused.
    pub async fn resume_kind(
        &self,
        operator: &Operator,
        kind: &str,
    ) -> Result<(&'static str, bool), AdminError> {
        self.set_paused(operator, kind, false).await
    }

    async fn set_paused(
        &self,
        operator: &Operator,
        kind: &str,
        pause: bool,
    ) -> Result<(&'static str, bool), AdminError> {
        let name = lifecycle_jobs::kind_name(kind)
            .ok_or_else(|| AdminError::UnknownKind(kind.to_string()))?;
        let now_ms = self.clock.now_ms();
        let mut tx = self.store.begin().await?;
        let changed = if pause {
            admin::pause_kind(&mut tx, name, operator.as_str(), now_ms).await?
        } else {
            admin::resume_kind(&mut tx, name).await?
        };
        if changed {
            admin::record_action(
                &mut tx,
                &NewOperatorAction {
                    operator: operator.as_str(),
                    action: if pause { "pause" } else { "resume" },
                    target: name.to_string(),
                    job_count: 0,
                    reason: None,
                    at_ms: now_ms,
                },
            )
            .await?;
        }
        tx.commit().await?;
        // This process sees it at once; the others within the refresh interval.
        self.refresh_paused_kinds().await?;
        Ok((name, changed))
    }
}
