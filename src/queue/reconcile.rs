//! Reconciliation: the ledger is the truth, the transport a copy. Whatever Redis lost (a
//! wipe, a restart without persistence, a push that failed after its commit) is pushed
//! again; the queue's epoch tells whether Redis lost the queue since the ledger last looked.

use std::time::Duration;

use uuid::Uuid;

use super::redis::Message;
use super::{Queue, QueueError};
use crate::store::ledger;

/// Jobs the reconciler pushes per round trip.
const RECONCILE_CHUNK: i64 = 1000;

impl Queue {
    /// Makes Redis hold every job the ledger says is queued, whatever happened to Redis:
    /// after a wipe or a restart without persistence, every queued job is pushed again; a
    /// job whose push after its commit failed is pushed once it is `grace` old; a job held
    /// by a worker that died, whose entry Redis lost, is queued again. Pushing a job twice
    /// is harmless: a delivery runs only if it claims the ledger row. Returns how many jobs
    /// it pushed. A no-op on the database transport, where the ledger row is the queue.
    pub async fn reconcile(&self, grace: Duration) -> Result<u64, QueueError> {
        let Some(epoch) = self.transport.epoch().await? else {
            return Ok(0);
        };
        if self.redis_lost_the_queue(&epoch).await? {
            let forgotten = ledger::forget_pushed(&self.store).await?;
            tracing::warn!(
                jobs = forgotten,
                "Redis lost the queue (restart without persistence, or flushed): pushing every queued job again"
            );
        }
        let now_ms = self.clock.now_ms();
        let stale_before = now_ms - (self.settings.visibility_timeout_secs as i64) * 1000;
        ledger::requeue_stale(
            &self.store,
            stale_before,
            self.settings.visibility_timeout_secs,
            now_ms,
            None,
        )
        .await?;
        let created_before = now_ms - grace.as_millis() as i64;
        let mut pushed = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let jobs = ledger::unpushed(&mut tx, created_before, RECONCILE_CHUNK).await?;
            if jobs.is_empty() {
                tx.commit().await?;
                return Ok(pushed);
            }
            let messages: Vec<(Message, i64)> = jobs
                .iter()
                .map(|unpushed| {
                    (
                        Message::of(&unpushed.job, unpushed.job.attempts),
                        unpushed.run_at_ms,
                    )
                })
                .collect();
            self.transport.push(&messages, now_ms).await?;
            let ids: Vec<Uuid> = jobs.iter().map(|unpushed| unpushed.job.id).collect();
            // Marked in the transaction that holds the rows (locked on PostgreSQL), so
            // another reconciler does not push them too.
            ledger::mark_pushed_in(&mut tx, &ids, Some(now_ms)).await?;
            tx.commit().await?;
            pushed += jobs.len() as u64;
            tracing::warn!(
                jobs = jobs.len(),
                "pushed queued jobs the transport did not hold"
            );
            if (jobs.len() as i64) < RECONCILE_CHUNK {
                return Ok(pushed);
            }
        }
    }

    /// Whether Redis lost the queue since the ledger last saw it: its epoch differs from the
    /// one recorded in the database, or it had none while the database had one. A system
    /// seen for the first time (no epoch anywhere) lost nothing.
    async fn redis_lost_the_queue(&self, current: &str) -> Result<bool, QueueError> {
        let namespace = &self.settings.namespace;
        let recorded = ledger::queue_epoch(&self.store, namespace).await?;
        if recorded.as_deref() == Some(current) {
            return Ok(false);
        }
        ledger::record_queue_epoch(&self.store, namespace, current).await?;
        Ok(recorded.is_some())
    }
}
