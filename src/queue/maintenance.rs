//! Housekeeping of a worker process, off the fetch path: the outbox relayed into jobs and
//! recorded events published every poll interval, finished jobs pruned every hour. One task
//! per process (not per fetcher), so a fetch never waits behind it and the work is done
//! once per interval however many workers the process runs. A failure is logged and tried
//! again next round; fetching goes on regardless.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Queue;

/// How often each process prunes the ledger, and for how long at most each time.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const PRUNE_BUDGET: Duration = Duration::from_secs(10);

/// The housekeeping task of one process.
pub struct Maintenance {
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Maintenance {
    /// Starts relaying, publishing and pruning until [`Maintenance::stop`].
    pub fn start(queue: Queue) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let every = Duration::from_millis(queue.settings.poll_interval_ms.max(1));
        let task = tokio::spawn(async move {
            let mut last_prune: Option<Instant> = None;
            loop {
                if let Err(error) = queue.relay_outbox().await {
                    tracing::warn!(%error, "could not relay the outbox");
                }
                if let Err(error) = queue.publish_events().await {
                    tracing::warn!(%error, "could not publish events");
                }
                if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                    last_prune = Some(Instant::now());
                    match queue.prune(PRUNE_BUDGET).await {
                        Ok(0) => {}
                        Ok(pruned) => {
                            tracing::info!(jobs = pruned, "pruned finished jobs past the retention")
                        }
                        Err(error) => tracing::warn!(%error, "could not prune finished jobs"),
                    }
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
