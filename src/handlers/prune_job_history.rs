//! PruneJobHistory (issue 14): deletes finished job records past the retention, once per
//! tick across every process (it was an hourly chore of each process). The deletion and
//! its budget are the queue's ([`crate::queue::Queue::prune_before`]): batches of their own
//! transactions, so a rerun after a crash goes on where it stopped. The firings of ticks
//! past the retention go too, each sweep's latest kept.

use chrono::{DateTime, Utc};
use lifecycle_jobs::PruneJobHistory;

use super::sweep_result::{finish, sweep_handler};
use super::{JobError, Outcome, Runtime};
use crate::clock::Clock;
use crate::queue::Queue;
use crate::queue::maintenance::PRUNE_BUDGET;
use crate::store::schedule;

sweep_handler!(PruneJobHistory, run);

async fn run(rt: &Runtime<'_>, job: &PruneJobHistory) -> Result<Outcome, JobError> {
    let before_ms = cutoff_ms(rt.queue, rt.clock, job.at);
    let pruned = rt
        .queue
        .prune_before(before_ms, PRUNE_BUDGET)
        .await
        .map_err(|error| JobError::Queue(error.to_string()))?;
    // The schedule's own history goes with the jobs it names.
    let firings = schedule::prune_before(rt.store, before_ms).await?;
    if firings > 0 {
        tracing::info!(firings, "pruned schedule firings past the retention");
    }
    finish(rt, pruned, "finished jobs pruned").await
}

/// Jobs finished before this (milliseconds) are past the retention, counted back from the
/// tick, never from later than the clock.
pub fn cutoff_ms(queue: &Queue, clock: &Clock, at: DateTime<Utc>) -> i64 {
    queue.prune_cutoff_ms(at.min(clock.now()).timestamp_millis())
}
