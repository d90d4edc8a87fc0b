//! Housekeeping of a worker process, off the fetch path: the outbox relayed into jobs and
//! recorded events published every poll interval. (Finished jobs are pruned by the
//! scheduled PruneJobHistory sweep, once per tick across every process.) One task
//! per process (not per fetcher), so a fetch never waits behind it and the work is done
//! once per interval however many workers the process runs. A failure is logged and tried
//! again next round; fetching goes on regardless.
//!
//! The chores are [`Queue`] methods, below the task, so tests can run one round of each
//! directly; the PruneJobHistory sweep deletes finished jobs ([`crate::store::ledger::prune`]).

use std::time::Duration;

use tokio::sync::watch;

use super::{AfterCommit, EnqueueRequest, IdempotencyKey, Queue, QueueError};
use crate::store::{events, outbox};

/// Outbox rows relayed, and events published, per transaction.
const RELAY_CHUNK: i64 = 500;

/// The housekeeping task of one process.
pub struct Maintenance {
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Maintenance {
    /// Starts relaying and publishing until [`Maintenance::stop`].
    pub fn start(queue: Queue) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let every = Duration::from_millis(queue.settings.poll_interval_ms.max(1));
        let task = tokio::spawn(async move {
            loop {
                if let Err(error) = queue.relay_outbox().await {
                    tracing::warn!(%error, "could not relay the outbox");
                }
                if let Err(error) = queue.publish_events().await {
                    tracing::warn!(%error, "could not publish events");
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        Self { task, stop }
    }

    /// Stops after the round under way.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

impl Queue {
    /// Turns the rows producers wrote into `job_outbox` into jobs: each row into exactly one
    /// job (row and job written in one transaction), or, when its payload is invalid or its
    /// key holds another job, into a row marked with the reason. Returns how many rows it
    /// relayed.
    pub async fn relay_outbox(&self) -> Result<u64, QueueError> {
        let mut relayed = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let rows = outbox::pending(&mut tx, RELAY_CHUNK).await?;
            if rows.is_empty() {
                tx.commit().await?;
                return Ok(relayed);
            }
            let now = self.clock.now();
            let mut after_commit = AfterCommit::default();
            for row in &rows {
                let validated = lifecycle_jobs::validate_json(&row.kind, &row.payload)
                    .and_then(|job| job.check_requested_at(now).map(|()| job));
                // A row is relayed into one job, or marked with why it is not: an invalid
                // payload, or a key that holds another job (the insert recorded nothing).
                let refusal = match validated {
                    Ok(job) => {
                        // The producer's key is scoped to the job's account like any other
                        // producer's; without one, the row's own id keys the job, in the
                        // service's space, so relaying a row twice records one job.
                        let key = match &row.idempotency_key {
                            Some(key) => IdempotencyKey::Caller(key.clone()),
                            None => IdempotencyKey::internal(format!("outbox:{}", row.id)),
                        };
                        let request = EnqueueRequest {
                            kind: job.name,
                            account_id: Some(job.account_id),
                            payload: job.payload,
                            idempotency_key: Some(key),
                            run_at_ms: None,
                        };
                        match self.enqueue_in(&mut tx, request).await {
                            Ok((enqueued, pending)) => {
                                after_commit.0.extend(pending.0);
                                outbox::mark_relayed(&mut tx, row.id, Some(enqueued.id), None, now)
                                    .await?;
                                continue;
                            }
                            Err(conflict @ QueueError::IdempotencyConflict { .. }) => {
                                conflict.to_string()
                            }
                            Err(error) => return Err(error),
                        }
                    }
                    Err(refusal) => refusal.to_string(),
                };
                tracing::warn!(outbox_id = row.id, %refusal, "outbox row refused");
                outbox::mark_relayed(&mut tx, row.id, None, Some(&refusal), now).await?;
            }
            tx.commit().await?;
            // A failed push leaves the jobs to the reconciler: they are in the ledger.
            if let Err(error) = self.push(after_commit).await {
                tracing::warn!(%error, "could not push relayed outbox jobs; the reconciler will");
            }
            relayed += rows.len() as u64;
            if (rows.len() as i64) < RELAY_CHUNK {
                return Ok(relayed);
            }
        }
    }

    /// Publishes recorded events to the Redis stream, each once, in the order they are
    /// numbered. Returns how many it added.
    ///
    /// One publisher at a time (PostgreSQL: an advisory lock; SQLite has one writer); the
    /// others return at once, the holder publishing their events too. Each round numbers
    /// the newly visible events and commits the numbers, then hands every numbered,
    /// unmarked event to the stream under the entry id `0-<number>`, then marks them. A
    /// crash between the publish and the mark leaves numbered events whose entry ids the
    /// stream already has: the next publish skips them (Redis accepts only ids above its
    /// last), so nothing is added twice, and nothing is left out or put out of order.
    pub async fn publish_events(&self) -> Result<u64, QueueError> {
        if !self.transport.publishes_events() {
            return Ok(0);
        }
        // An idle publisher looks without taking the lock.
        let mut tx = self.store.begin_read().await?;
        let waiting = events::any_unpublished(&mut tx).await?;
        tx.commit().await?;
        if !waiting {
            return Ok(0);
        }
        let Some(lock) = events::lock_publisher(&self.store).await? else {
            return Ok(0);
        };
        let published = self.publish_numbered_events().await;
        // Released whatever happened: a failed publish is taken up again next time.
        lock.release().await?;
        published
    }

    /// The rounds of [`Queue::publish_events`], under the publisher's lock.
    async fn publish_numbered_events(&self) -> Result<u64, QueueError> {
        let mut published = 0;
        loop {
            // The numbers are committed before the publish: they fix the entry ids.
            let mut tx = self.store.begin().await?;
            events::assign_stream_seqs(&mut tx, RELAY_CHUNK).await?;
            tx.commit().await?;
            let mut tx = self.store.begin_read().await?;
            let rows = events::numbered_unpublished(&mut tx, RELAY_CHUNK).await?;
            tx.commit().await?;
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                return Ok(published);
            };
            let (first_seq, last_seq) = (first.stream_seq, last.stream_seq);
            let encoded: Vec<(i64, String)> = rows
                .iter()
                .map(|row| Ok((row.stream_seq, serde_json::to_string(&row.event)?)))
                .collect::<Result<_, serde_json::Error>>()
                .map_err(QueueError::Encode)?;
            let added = self
                .transport
                .publish(
                    &self.settings.events_stream,
                    self.settings.events_max_len,
                    &encoded,
                )
                .await?;
            if (added as usize) < rows.len() {
                tracing::warn!(
                    events = rows.len() - added as usize,
                    "events already on the stream (published before their mark was lost) were not added again"
                );
            }
            let mut tx = self.store.begin().await?;
            events::mark_published(&mut tx, first_seq, last_seq, self.clock.now()).await?;
            tx.commit().await?;
            published += added;
            if (rows.len() as i64) < RELAY_CHUNK {
                return Ok(published);
            }
        }
    }
}
