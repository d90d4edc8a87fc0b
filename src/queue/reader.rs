//! Reading: each consumer takes batches of deliveries. Without a stream (the database
//! transport) it claims due rows of the ledger; with one (Redis) it reads entries and claims
//! their rows, the ledger deciding, so that a job pushed twice never runs twice at once.
//! Each reader also takes back, now and then, what dead consumers left behind.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use uuid::Uuid;

use super::paused::PAUSED_DELAY_MS;
use super::redis::{Entry, Message, RedisReader};
use super::{Queue, QueueError};
use crate::retrying::with_retries;
use crate::store::ledger::{self, ClaimedJob};

/// One job handed to a worker, with what the transport needs to settle it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub job: ClaimedJob,
    /// The Redis stream entry carrying the job; `None` on the database transport.
    pub entry_id: Option<String>,
}

impl Queue {
    /// A source of deliveries for one consumer.
    pub async fn reader(&self, consumer: String) -> Result<Reader, QueueError> {
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(1));
        let stream = self.transport.reader(&consumer, poll).await?;
        Ok(Reader {
            queue: self.clone(),
            consumer,
            stream,
            last_requeue: None,
        })
    }
}

/// Reads batches of deliveries for one consumer.
pub struct Reader {
    queue: Queue,
    consumer: String,
    /// The transport's reader; `None` when the ledger itself is the queue.
    stream: Option<RedisReader>,
    /// When this reader last put back jobs of dead workers (database transport) or
    /// reconciled the ledger with Redis.
    last_requeue: Option<std::time::Instant>,
}

impl Reader {
    /// The next batch of at most `max` deliveries; empty when none came within the poll
    /// interval.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let now_ms = self.queue.clock.now_ms();
        match &mut self.stream {
            None => self.claim_due(max, now_ms).await,
            Some(stream) => {
                let every = Duration::from_secs(self.queue.settings.reconcile_interval_secs.max(1));
                if self.last_requeue.is_none_or(|at| at.elapsed() >= every) {
                    self.last_requeue = Some(std::time::Instant::now());
                    // A failed reconciliation is tried again next time; reading goes on.
                    if let Err(error) = self.queue.reconcile(every).await {
                        tracing::warn!(%error, "could not reconcile the ledger with Redis");
                    }
                }
                let entries = stream.read(max, now_ms).await?;
                self.claim_read(entries).await
            }
        }
    }

    /// Claims due rows of the ledger (the database transport), after putting back, every
    /// visibility timeout / 4, what dead workers held; waits a poll interval when none is due.
    async fn claim_due(&mut self, max: usize, now_ms: i64) -> Result<Vec<Delivery>, QueueError> {
        let every = Duration::from_secs(self.queue.settings.visibility_timeout_secs.max(4) / 4);
        if self.last_requeue.is_none_or(|at| at.elapsed() >= every) {
            self.last_requeue = Some(std::time::Instant::now());
            let requeued = self.queue.requeue_stale().await?;
            if requeued > 0 {
                tracing::warn!(jobs = requeued, "took over jobs a dead worker left claimed");
            }
        }
        let paused = self.queue.paused_kinds().await;
        let claimed = ledger::claim_due(
            &self.queue.store,
            &self.consumer,
            max as i64,
            now_ms,
            &paused,
        )
        .await?;
        if claimed.is_empty() {
            tokio::time::sleep(Duration::from_millis(self.queue.settings.poll_interval_ms)).await;
        }
        Ok(claimed
            .into_iter()
            .map(|job| Delivery {
                job,
                entry_id: None,
            })
            .collect())
    }

    /// Claims the rows of the entries the stream delivered; an entry whose row is not
    /// claimable (running or finished meanwhile) is acknowledged and dropped.
    async fn claim_read(&self, entries: Vec<Entry>) -> Result<Vec<Delivery>, QueueError> {
        let entries = self.delay_paused(entries).await?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // The ledger decides: a delivery runs only if it claims its row, so a job
        // pushed twice, or finished meanwhile, never runs twice at once.
        let ids: Vec<Uuid> = entries.iter().map(|entry| entry.message.id).collect();
        // The read may have waited: the claim is stamped with the time it starts.
        let now_ms = self.queue.clock.now_ms();
        // Entries read are pending for this consumer: were the claim to fail for
        // good they would wait out the visibility timeout, so a passing database
        // failure is ridden out here, and a lasting one puts them back.
        let claimed = match self.claim_delivered(ids, now_ms).await {
            Ok(claimed) => claimed,
            Err(error) => {
                self.queue.transport.put_back(&entries).await?;
                return Err(error);
            }
        };
        let mut claimed: HashMap<Uuid, ClaimedJob> =
            claimed.into_iter().map(|job| (job.id, job)).collect();
        // A job pushed before its transaction committed may be invisible to that claim:
        // wait for the transaction, then claim what it committed.
        let recording: Vec<&Entry> = entries
            .iter()
            .filter(|entry| entry.message.recorded_under.is_some())
            .filter(|entry| !claimed.contains_key(&entry.message.id))
            .collect();
        let mut put_back = HashSet::new();
        if !recording.is_empty() {
            match self.claim_once_recorded(&recording, now_ms).await {
                Ok(late) => claimed.extend(late.into_iter().map(|job| (job.id, job))),
                Err(error) => {
                    tracing::warn!(%error, entries = recording.len(), "could not claim jobs pushed before their commit; putting them back");
                    let back: Vec<Entry> = recording.into_iter().cloned().collect();
                    self.queue.transport.put_back(&back).await?;
                    put_back.extend(back.into_iter().map(|entry| entry.entry_id));
                }
            }
        }
        let mut deliveries = Vec::with_capacity(claimed.len());
        let mut dropped = Vec::new();
        for entry in entries {
            match claimed.remove(&entry.message.id) {
                Some(job) => deliveries.push(Delivery {
                    job,
                    entry_id: Some(entry.entry_id),
                }),
                None if put_back.contains(&entry.entry_id) => {}
                None => dropped.push(entry.entry_id),
            }
        }
        if !dropped.is_empty() {
            tracing::debug!(
                entries = dropped.len(),
                "dropped deliveries of jobs already running or finished"
            );
            self.queue.transport.settle(&dropped, &[]).await?;
        }
        Ok(deliveries)
    }

    /// Claims the rows of `ids` for this reader, riding out a passing database failure.
    async fn claim_delivered(
        &self,
        ids: Vec<Uuid>,
        now_ms: i64,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        let (store, consumer) = (&self.queue.store, &self.consumer);
        with_retries("claim delivered jobs", || async {
            Ok(ledger::claim_delivered(store, consumer, &ids, now_ms).await?)
        })
        .await
    }

    /// Waits for the transactions that recorded the jobs of `entries` (pushed before they
    /// committed) to end, then claims what they committed.
    async fn claim_once_recorded(
        &self,
        entries: &[&Entry],
        now_ms: i64,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        let mut names: Vec<i32> = entries
            .iter()
            .filter_map(|entry| entry.message.recorded_under)
            .collect();
        names.sort_unstable();
        names.dedup();
        let store = &self.queue.store;
        with_retries("wait for recording transactions", || async {
            Ok::<_, QueueError>(ledger::await_recordings(store, &names).await?)
        })
        .await?;
        let ids = entries.iter().map(|entry| entry.message.id).collect();
        self.claim_delivered(ids, now_ms).await
    }

    /// Moves the entries of paused kinds to the delayed set, to be looked at again in
    /// [`PAUSED_DELAY_MS`]: unclaimed, their jobs stay queued in the ledger. Returns the rest.
    async fn delay_paused(&self, entries: Vec<Entry>) -> Result<Vec<Entry>, QueueError> {
        let paused = self.queue.paused_kinds().await;
        if paused.is_empty() || entries.is_empty() {
            return Ok(entries);
        }
        let (held, runnable): (Vec<Entry>, Vec<Entry>) = entries
            .into_iter()
            .partition(|entry| paused.contains(&entry.message.kind));
        if !held.is_empty() {
            let later = self.queue.clock.now_ms() + PAUSED_DELAY_MS;
            let delayed: Vec<(String, Message, i64)> = held
                .into_iter()
                .map(|entry| (entry.entry_id, entry.message, later))
                .collect();
            self.queue.transport.settle(&[], &delayed).await?;
        }
        Ok(runnable)
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }
}
