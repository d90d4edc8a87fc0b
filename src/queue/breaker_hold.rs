//! An administrator's confirmation of an account held by the idle-lock circuit breaker:
//! the one path of `lifecycle sweep lock-idle --account A --confirm` and the dashboard's
//! Confirm button. It enqueues a LockIdleUsers run over that account that confirms it (the
//! run lifts the hold and locks, as the breaker's rules say), and records who confirmed in
//! `operator_actions`, in the transaction that enqueues it.

use chrono::{DateTime, Utc};
use lifecycle_jobs::LockIdleUsers;
use uuid::Uuid;

use super::admin::Operator;
use super::{EnqueueRequest, Queue, QueueError};
use crate::store::admin::{self, NewOperatorAction};

#[derive(Debug, thiserror::Error)]
pub enum ConfirmHoldError {
    #[error("invalid account {0}: must be a positive id")]
    InvalidAccount(i64),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<crate::store::StoreError> for ConfirmHoldError {
    fn from(error: crate::store::StoreError) -> Self {
        ConfirmHoldError::Queue(QueueError::Store(error))
    }
}

impl Queue {
    /// Confirms the idle-lock hold of `account_id`, judging idleness as of `at` (fixed now,
    /// so a retried job judges as its first attempt did). Returns the sweep job's id.
    pub async fn confirm_lock_idle(
        &self,
        operator: &Operator,
        account_id: i64,
        at: DateTime<Utc>,
    ) -> Result<Uuid, ConfirmHoldError> {
        if account_id < 1 {
            return Err(ConfirmHoldError::InvalidAccount(account_id));
        }
        let job = LockIdleUsers {
            at: Some(at),
            account_id: Some(account_id),
            confirm_accounts: vec![account_id],
        };
        let request = EnqueueRequest::for_job(&job, None)?;
        let mut tx = self.store.begin().await?;
        let (enqueued, after_commit) = self.enqueue_in(&mut tx, request).await?;
        admin::record_action(
            &mut tx,
            &NewOperatorAction {
                operator: operator.as_str(),
                action: "confirm-hold",
                target: format!("account {account_id}"),
                job_count: 1,
                reason: None,
                at_ms: self.clock.now_ms(),
            },
        )
        .await?;
        tx.commit().await?;
        // Committed is queued: a failed push is the reconciler's to repeat.
        if let Err(error) = self.push(after_commit).await {
            tracing::warn!(%error, "could not push the confirming sweep; the reconciler will");
        }
        tracing::info!(operator = %operator, account_id, job_id = %enqueued.id,
                       "idle-lock hold confirmed");
        Ok(enqueued.id)
    }
}
