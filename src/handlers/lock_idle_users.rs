//! LockIdleUsers: the nightly idle lock with its warnings, exemptions and breaker, run in
//! batches by `sweep::batches`.

use lifecycle_jobs::{Job, LockIdleUsers};

use super::sweep::{Scope, SweepKind};
use super::sweep_result::sweep_handler;
use super::{JobError, Outcome, Runtime};

sweep_handler!(LockIdleUsers, run);

async fn run(rt: &Runtime<'_>, job: &LockIdleUsers) -> Result<Outcome, JobError> {
    let scope = Scope::of(rt, job.at, job.account_id, &job.confirm_accounts);
    super::sweep::run(rt, LockIdleUsers::NAME, SweepKind::LockIdle, &scope).await
}
