//! What a sweep reports when it ends: the rows it changed, on its firing (for `lifecycle
//! schedule`) and as the job's outcome.

use super::{JobError, Outcome, Runtime};
use crate::store::schedule;

/// Records that the sweep run by `rt` changed `rows` (`what`: "licenses released") on the
/// firing that enqueued it, if any, and returns its outcome.
pub async fn finish(rt: &Runtime<'_>, rows: u64, what: &str) -> Result<Outcome, JobError> {
    let summary = format!("{rows} {what}");
    let rows = i64::try_from(rows).unwrap_or(i64::MAX);
    schedule::record_result(rt.store, rt.job_id, rows, &summary, rt.clock.now()).await?;
    Ok(if rows > 0 {
        Outcome::Applied
    } else {
        Outcome::NothingToDo(summary)
    })
}

/// The refusal of [`super::Handle::apply`] for a sweep: a sweep runs in short transactions
/// of its own, never in one job transaction.
pub fn not_in_one_transaction(kind: &str) -> JobError {
    JobError::Precondition(format!("{kind} runs in batches, outside a job transaction"))
}
