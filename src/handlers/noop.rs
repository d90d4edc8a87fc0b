//! Noop: does nothing; the benchmarks measure the queue with it.

use lifecycle_jobs::Noop;

use super::{JobContext, JobError, Outcome};

impl super::Handle for Noop {
    fn subject(&self) -> (i64, Option<i64>) {
        (self.account_id, None)
    }

    fn run(&self, _ctx: &JobContext<'_>) -> impl Future<Output = Result<Outcome, JobError>> + Send {
        std::future::ready(Ok(Outcome::NothingToDo("noop".into())))
    }
}
