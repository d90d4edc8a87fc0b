//! PruneJobHistory (issue 14): deletes finished job records past their retention, once per
//! tick across every process (it was an hourly chore of each process): batches of their own
//! transactions ([`ledger::prune`]), so a rerun after a crash goes on where it stopped. The
//! firings of ticks past the retention go too, each sweep's latest kept.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifecycle_jobs::{Job, PruneJobHistory};

use super::sweep_result::{finish, sweep_handler};
use super::{JobError, Outcome, Runtime};
use crate::clock::Clock;
use crate::config::QueueSettings;
use crate::store::ledger::{self, PruneCutoffs};
use crate::store::schedule;

/// For how long at most one run prunes; what is left goes at the next tick.
pub const PRUNE_BUDGET: Duration = Duration::from_secs(10);

sweep_handler!(PruneJobHistory, run);

async fn run(rt: &Runtime<'_>, job: &PruneJobHistory) -> Result<Outcome, JobError> {
    let cutoffs = cutoffs(&rt.settings.queue, rt.clock, job.at);
    let pruned = ledger::prune(rt.store, cutoffs, PRUNE_BUDGET).await?;
    // The schedule's own history goes with the jobs it names.
    let firings = schedule::prune_before(rt.store, cutoffs.finished_before_ms).await?;
    if firings > 0 {
        tracing::info!(firings, "pruned schedule firings past the retention");
    }
    finish(rt, PruneJobHistory::NAME, pruned, "finished jobs pruned").await
}

/// The retention's cutoffs counted back from the tick, never from later than the clock.
pub fn cutoffs(queue: &QueueSettings, clock: &Clock, at: DateTime<Utc>) -> PruneCutoffs {
    PruneCutoffs::at(
        at.min(clock.now()).timestamp_millis(),
        queue.retention_days,
        queue.dead_retention_days,
    )
}
