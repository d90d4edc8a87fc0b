//! ExpirePasswords: must-change-password once a password is older than the maximum age,
//! with its warnings, run in batches by `sweep::batches`.

use lifecycle_jobs::{ExpirePasswords, Job};

use super::sweep::{self, SweepKind};
use super::{JobContext, JobError, JobTx, Outcome, Runtime};

impl super::Handle for ExpirePasswords {
    fn subject(&self) -> (i64, Option<i64>) {
        (self.account_id(), None)
    }

    fn apply(
        &self,
        _tx: &mut JobTx,
        _ctx: &JobContext<'_>,
    ) -> impl Future<Output = Result<Outcome, JobError>> + Send {
        std::future::ready(Err(sweep::not_one_transaction()))
    }

    fn run(&self, rt: &Runtime<'_>) -> impl Future<Output = Result<Outcome, JobError>> + Send {
        let scope = sweep::Scope::of(rt, self.at, self.account_id, &self.confirm_accounts);
        async move { sweep::run(rt, Self::NAME, SweepKind::ExpirePasswords, &scope).await }
    }
}
