//! RecordLogin (SPEC section 4), reported by the auth service: a success resets the failure
//! count and sets the last login; a failure past the limit (the account's, else
//! `policy.failed_login_limit`: "more than 5 in a row") locks the user (`failed_logins`) and
//! emails a notice.
//!
//! Sign-in times are telemetry, not lifecycle changes: they are not written to the audit
//! log; the lock is.

use lifecycle_jobs::{Actor, Job, RecordLogin};

use super::outbox::record_email;
use super::{JobContext, JobError, Outcome, load_account, load_user};
use crate::domain::lockout;
use crate::domain::user::{LockReason, UserStatus};
use crate::mail::format_instant;
use crate::mail::render::Template;
use crate::queue::AfterCommit;
use crate::store::users;

impl super::Handle for RecordLogin {
    fn subject(&self) -> (i64, Option<i64>) {
        (self.account_id, Some(self.user_id))
    }

    fn run(&self, ctx: &JobContext<'_>) -> impl Future<Output = Result<Outcome, JobError>> + Send {
        run(ctx, self)
    }
}

pub async fn run(ctx: &JobContext<'_>, job: &RecordLogin) -> Result<Outcome, JobError> {
    let Some(mut tx) = ctx.begin_once().await? else {
        return Ok(Outcome::AlreadyApplied);
    };
    let account = load_account(&mut tx, job.account_id).await?;
    let user = load_user(&mut tx, job.account_id, job.user_id).await?;
    let now = ctx.clock.now();
    // A report from a machine whose clock runs ahead does not move times into the future.
    let at = job.at.map_or(now, |at| at.min(now));
    let mut after_commit = AfterCommit::default();
    let outcome = if job.succeeded {
        if user.status() == UserStatus::Active {
            users::record_successful_login(&mut tx, user.id, at).await?;
            Outcome::Applied
        } else {
            Outcome::NothingToDo(format!(
                "user {} is {}: a successful sign-in is not recorded",
                user.id, user.status
            ))
        }
    } else {
        let failures = users::count_failed_login(&mut tx, user.id).await?;
        let limit = lockout::failed_login_limit(
            account.failed_login_limit,
            ctx.settings.policy.failed_login_limit,
        );
        if lockout::failure_locks(failures, limit) {
            let stamp = ctx.audit_stamp(job.account_id, Actor::System);
            // Only the report that actually locks an active user sends the notice.
            if users::lock(&mut tx, &stamp, user.id, LockReason::FailedLogins).await? {
                after_commit = record_email(
                    ctx,
                    &mut tx,
                    &account,
                    &user,
                    Template::LockedFailedLogins,
                    serde_json::json!({
                        "failed_logins": failures,
                        "locked_at": format_instant(now, account.time_zone()),
                    }),
                )
                .await?;
            }
        }
        Outcome::Applied
    };
    ctx.commit_applied(tx, RecordLogin::NAME, after_commit)
        .await?;
    Ok(outcome)
}
