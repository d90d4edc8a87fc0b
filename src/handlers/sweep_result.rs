//! What a sweep reports when it ends: the rows it changed, on its firing (for `lifecycle
//! schedule`) and as the job's outcome.

use super::{JobError, Outcome, Runtime};
use crate::metrics::METRICS;
use crate::store::schedule;

/// Records that the sweep of kind `kind` run by `rt` changed `rows` (`what`: "licenses
/// released") and returns its outcome.
pub async fn finish(
    rt: &Runtime<'_>,
    kind: &str,
    rows: u64,
    what: &str,
) -> Result<Outcome, JobError> {
    let summary = format!("{rows} {what}");
    report(rt, kind, rows, &summary).await?;
    Ok(if rows > 0 {
        Outcome::Applied
    } else {
        Outcome::NothingToDo(summary)
    })
}

/// Records what a sweep run did: on the firing that enqueued it, if any (`lifecycle
/// schedule`, the dashboard), and in the process's metrics.
pub async fn report(
    rt: &Runtime<'_>,
    kind: &str,
    rows: u64,
    summary: &str,
) -> Result<(), JobError> {
    METRICS.sweep_rows_changed(kind, rows);
    let rows = i64::try_from(rows).unwrap_or(i64::MAX);
    schedule::record_result(rt.store, rt.job_id, rows, summary, rt.clock.now()).await?;
    Ok(())
}

/// `impl Handle` for a sweep kind: of its payload's account (0: every account), run by
/// `$run(rt, job)` in batches of short transactions of its own, never in one job
/// transaction.
macro_rules! sweep_handler {
    ($kind:ty, $run:path) => {
        impl $crate::handlers::Handle for $kind {
            fn subject(&self) -> (i64, Option<i64>) {
                (lifecycle_jobs::Job::account_id(self), None)
            }

            fn run(
                &self,
                rt: &$crate::handlers::Runtime<'_>,
            ) -> impl Future<Output = Result<$crate::handlers::Outcome, $crate::handlers::JobError>>
            + Send {
                $run(rt, self)
            }
        }
    };
}
pub(crate) use sweep_handler;
