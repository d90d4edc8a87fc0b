//! Process heartbeats and the rescue of dead processes' claims (what Oban calls a lifeline
//! and River a rescuer).
//!
//! Every worker process has a row in `worker_processes` and beats it every
//! `queue.heartbeat_interval_secs`. Each beat also looks for processes silent for more than
//! `queue.heartbeat_timeout_secs`: the first live process to close such a row puts its claims
//! back (each attempt recorded as ended by the process's death) and, on Redis, its consumers'
//! pending entries. A `kill -9`ed worker's jobs thus run again within about the timeout plus
//! one interval, not after the whole visibility timeout, which stays as the fallback for a
//! worker that hangs while still beating.
//!
//! Beats use the wall clock, not the queue's [`crate::clock::Clock`]: liveness is about real
//! time, and tests that move the business clock by days must not make live workers look dead.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use tokio::sync::watch;

use super::{Queue, QueueError};
use crate::store::ledger;
use crate::store::workers::{self, NewProcess, ProcessRow, consumer_prefix, stop_reason};

/// Who a worker process is: its id prefixes the names of its consumers.
#[derive(Clone, Debug)]
pub struct ProcessIdentity {
    pub id: String,
    pub host: String,
    pub pid: u32,
}

impl ProcessIdentity {
    /// `<host>-<pid>-<random>`: unique even when a container restarts with the same pid.
    pub fn new() -> Self {
        let host = hostname();
        let pid = std::process::id();
        let nonce: u16 = rand::random();
        Self {
            id: format!("{host}-{pid}-{nonce:04x}"),
            host,
            pid,
        }
    }

    /// The name of one consumer (fetcher) of this process.
    pub fn consumer(&self, worker: usize, fetcher: usize) -> String {
        format!("{}{worker}-{fetcher}", self.prefix())
    }

    pub fn prefix(&self) -> String {
        consumer_prefix(&self.id)
    }
}

impl Default for ProcessIdentity {
    fn default() -> Self {
        Self::new()
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .unwrap_or_else(|| "worker".to_string())
}

pub(crate) fn wall_clock_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The heartbeat task of one process.
pub struct Lifeline {
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Lifeline {
    /// Registers the process and starts beating (and rescuing) until [`Lifeline::stop`].
    pub async fn start(
        queue: Queue,
        identity: ProcessIdentity,
        workers: usize,
        concurrency: usize,
    ) -> Result<Self, QueueError> {
        workers::register(
            &queue.store,
            &NewProcess {
                id: &identity.id,
                host: &identity.host,
                pid: i64::from(identity.pid),
                workers: workers as i32,
                concurrency: concurrency as i32,
                now_ms: wall_clock_ms(),
            },
        )
        .await?;
        let (stop, mut stopped) = watch::channel(false);
        let interval = Duration::from_secs(queue.settings.heartbeat_interval_secs.max(1));
        let task = tokio::spawn(async move {
            loop {
                if let Err(error) = queue.beat_and_rescue(&identity).await {
                    tracing::warn!(%error, "heartbeat failed; trying again");
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        Ok(Self { task, stop })
    }

    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

impl Queue {
    /// One beat of `identity`, then the rescue of every process silent past the timeout.
    async fn beat_and_rescue(&self, identity: &ProcessIdentity) -> Result<(), QueueError> {
        let now_ms = wall_clock_ms();
        if !workers::beat(&self.store, &identity.id, now_ms).await? {
            // Another process took us for dead (a pause longer than the timeout) and put our
            // claims back; a delivery we still run settles harmlessly or is refused at claim.
            tracing::error!(
                process = identity.id,
                "this process was presumed dead by another and its claims were put back"
            );
        }
        let timeout_ms = (self.settings.heartbeat_timeout_secs as i64) * 1000;
        let silent_before = now_ms - timeout_ms;
        for dead in workers::silent_since(&self.store, silent_before, &identity.id).await? {
            match self.rescue(&dead, silent_before).await {
                Ok(Some(requeued)) => tracing::warn!(
                    process = dead.id,
                    jobs = requeued,
                    "worker process stopped answering; its jobs were put back"
                ),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, process = dead.id, "could not rescue"),
            }
        }
        // A day of stopped processes is history enough.
        workers::prune_stopped(&self.store, now_ms - 24 * 3600 * 1000).await?;
        Ok(())
    }

    /// Closes a silent process's row and puts back what it held; `None` when another process
    /// got there first (or it beat again).
    pub async fn rescue(
        &self,
        dead: &ProcessRow,
        silent_before_ms: i64,
    ) -> Result<Option<u64>, QueueError> {
        let now_ms = wall_clock_ms();
        let mut tx = self.store.begin().await?;
        let closed = workers::close(
            &mut tx,
            &dead.id,
            now_ms,
            stop_reason::HEARTBEAT_LOST,
            Some(silent_before_ms),
        )
        .await?;
        if !closed {
            tx.rollback().await?;
            return Ok(None);
        }
        let last_beat = Utc
            .timestamp_millis_opt(dead.last_beat_ms)
            .single()
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let reason = format!(
            "worker process {} stopped answering (last heartbeat {last_beat})",
            dead.id
        );
        let queue_now_ms = self.clock.now_ms();
        let requeued = ledger::requeue_held_by(
            &mut tx,
            &consumer_prefix(&dead.id),
            &reason,
            queue_now_ms,
            self.transport.held_by_ledger(queue_now_ms),
        )
        .await?;
        tx.commit().await?;
        self.release_transport(&dead.id).await?;
        Ok(Some(requeued))
    }

    /// Redis: puts the pending entries of process `id`'s consumers back on the stream and
    /// drops the consumers. Their rows are queued again; should this fail, the reconciler
    /// pushes them (they are not marked pushed).
    pub(crate) async fn release_transport(&self, id: &str) -> Result<u64, QueueError> {
        self.transport.release_consumers(&consumer_prefix(id)).await
    }

    /// At shutdown, after the workers stopped: gives back the claims `unstarted` (fetched,
    /// never run: their attempt is uncounted), puts back with a reason any job of this
    /// process still held (interrupted past the shutdown timeout), releases its Redis
    /// consumers and closes its row.
    pub async fn leave(
        &self,
        identity: &ProcessIdentity,
        unstarted: &[uuid::Uuid],
    ) -> Result<(), QueueError> {
        let prefix = identity.prefix();
        let now_ms = self.clock.now_ms();
        let held = self.transport.held_by_ledger(now_ms);
        ledger::unclaim(&self.store, unstarted, &prefix, held).await?;
        let mut tx = self.store.begin().await?;
        let interrupted = ledger::requeue_held_by(
            &mut tx,
            &prefix,
            "interrupted: the worker process shut down before the attempt finished",
            now_ms,
            held,
        )
        .await?;
        workers::close(
            &mut tx,
            &identity.id,
            wall_clock_ms(),
            stop_reason::SHUT_DOWN,
            None,
        )
        .await?;
        tx.commit().await?;
        if interrupted > 0 {
            tracing::warn!(
                jobs = interrupted,
                "jobs still running at the end of the shutdown timeout were put back"
            );
        }
        self.release_transport(&identity.id).await?;
        Ok(())
    }
}
