//! ExpirePasswords: must-change-password once a password is older than the maximum age,
//! with its warnings, run in batches by `sweep::batches`.

use lifecycle_jobs::{ExpirePasswords, Job};

use super::sweep::{Scope, SweepKind};
use super::sweep_result::sweep_handler;
use super::{JobError, Outcome, Runtime};

sweep_handler!(ExpirePasswords, run);

async fn run(rt: &Runtime<'_>, job: &ExpirePasswords) -> Result<Outcome, JobError> {
    let scope = Scope::of(rt, job.at, job.account_id, &job.confirm_accounts);
    super::sweep::run(
        rt,
        ExpirePasswords::NAME,
        SweepKind::ExpirePasswords,
        &scope,
    )
    .await
}
