//! Settlement: how each attempt ended, recorded in the ledger and the transport in one
//! batch, and the jobs a worker held past the visibility timeout put back.

use uuid::Uuid;

use super::redis::Message;
use super::{Delivery, Queue, QueueError};
use crate::metrics::{METRICS, Outcome};
use crate::store::ledger::{self, Settlement};

/// How an attempt ended, as the queue needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    Succeeded,
    /// Bad input or a guard's refusal: dead at once.
    Permanent(String),
    /// Infrastructure: retried with backoff until the attempts run out.
    Transient(String),
}

impl Queue {
    /// Records how a batch of attempts ended (one database transaction, one Redis round
    /// trip), and finishes, retries or buries each job.
    pub async fn settle_batch(
        &self,
        attempts: &[(Delivery, AttemptResult)],
    ) -> Result<(), QueueError> {
        if attempts.is_empty() {
            return Ok(());
        }
        let now_ms = self.clock.now_ms();
        let mut settlements = Vec::with_capacity(attempts.len());
        let mut acks = Vec::new();
        let mut retries = Vec::new();
        for (delivery, result) in attempts {
            let job = &delivery.job;
            let attempt = job.attempts.max(1);
            let settlement = match result {
                AttemptResult::Succeeded => Settlement::Done,
                AttemptResult::Permanent(error) => Settlement::Failed {
                    error: error.clone(),
                    permanent: true,
                    retry_at_ms: None,
                },
                AttemptResult::Transient(error) => {
                    // The policy configured now holds, not the one of the day it was queued.
                    let policy = self.policy_for(&job.kind);
                    Settlement::Failed {
                        error: error.clone(),
                        permanent: false,
                        retry_at_ms: policy
                            .delay_after(attempt as u32)
                            .map(|delay| now_ms + delay.as_millis() as i64),
                    }
                }
            };
            if let Some(entry) = &delivery.entry_id {
                match &settlement {
                    Settlement::Failed {
                        retry_at_ms: Some(run_at_ms),
                        ..
                    } => retries.push((entry.clone(), Message::of(job, attempt), *run_at_ms)),
                    _ => acks.push(entry.clone()),
                }
            }
            settlements.push((job.id, attempt, settlement));
        }
        ledger::settle_many(
            &self.store,
            &settlements,
            now_ms,
            self.transport.held_by_ledger(now_ms),
        )
        .await?;
        for ((delivery, _), (_, _, settlement)) in attempts.iter().zip(&settlements) {
            let outcome = match settlement {
                Settlement::Done => Outcome::Ok,
                Settlement::Failed {
                    retry_at_ms: Some(_),
                    ..
                } => Outcome::Retry,
                Settlement::Failed { .. } => Outcome::Dead,
            };
            METRICS.processed(&delivery.job.kind, outcome);
        }
        // Both empty on the database transport: its deliveries carry no stream entry.
        self.transport.settle(&acks, &retries).await?;
        let retried: Vec<Uuid> = retries.iter().map(|(_, message, _)| message.id).collect();
        self.mark_pushed(&retried, now_ms);
        Ok(())
    }

    /// Puts back what any worker has held past the visibility timeout (it hung, or died
    /// without a heartbeat row to tell), recording why each attempt ended.
    pub async fn requeue_stale(&self) -> Result<u64, QueueError> {
        let now_ms = self.clock.now_ms();
        let stale_before = now_ms - (self.settings.visibility_timeout_secs as i64) * 1000;
        Ok(ledger::requeue_stale(
            &self.store,
            stale_before,
            self.settings.visibility_timeout_secs,
            now_ms,
            self.transport.held_by_ledger(now_ms),
        )
        .await?)
    }
}
