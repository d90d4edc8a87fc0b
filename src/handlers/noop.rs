//! Noop: does nothing; the benchmarks measure the queue with it.

use lifecycle_jobs::Noop;

use super::{JobError, Outcome, Runtime};

impl super::Handle for Noop {
    fn subject(&self) -> (i64, Option<i64>) {
        (self.account_id, None)
    }

    /// No transaction: a job that changes nothing has nothing to mark, and the benchmarks
    /// measure the queue, not a commit per job.
    fn run(&self, _rt: &Runtime<'_>) -> impl Future<Output = Result<Outcome, JobError>> + Send {
        std::future::ready(Ok(Outcome::NothingToDo("noop".into())))
    }
}
