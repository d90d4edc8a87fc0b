//! RecordLogin (SPEC section 4), reported by the auth service: a success resets the failure
//! count and sets the last login; a failure past the limit (the account's, else
//! `policy.failed_login_limit`: "more than 5 in a row") locks the user (`failed_logins`) and
//! emails a notice.
//!
//! Sign-in times are telemetry, not lifecycle changes: they are not written to the audit
//! log; the lock is.

use lifecycle_jobs::{Actor, RecordLogin};

use super::outbox::record_email;
use super::{JobContext, JobError, JobTx, Outcome, load_account, load_user};
use crate::domain::lockout;
use crate::domain::user::{LockReason, UserStatus};
use crate::mail::format_instant;
use crate::mail::render::Template;
use crate::store::users;

impl super::Apply for RecordLogin {
    fn subject(&self) -> (i64, Option<i64>) {
        (self.account_id, Some(self.user_id))
    }

    fn apply(
        &self,
        tx: &mut JobTx,
        ctx: &JobContext<'_>,
    ) -> impl Future<Output = Result<Outcome, JobError>> + Send {
        apply(tx, ctx, self)
    }
}

pub async fn apply(
    tx: &mut JobTx,
    ctx: &JobContext<'_>,
    job: &RecordLogin,
) -> Result<Outcome, JobError> {
    let account = load_account(tx, job.account_id).await?;
    let user = load_user(tx, job.account_id, job.user_id).await?;
    let now = ctx.clock.now();
    // A report from a machine whose clock runs ahead does not move times into the future.
    let at = job.at.map_or(now, |at| at.min(now));
    let outcome = if job.succeeded {
        if user.status() == UserStatus::Active {
            users::record_successful_login(tx, user.id, at).await?;
            Outcome::Applied
        } else {
            Outcome::NothingToDo(format!(
                "user {} is {}: a successful sign-in is not recorded",
                user.id, user.status
            ))
        }
    } else {
        let failures = users::count_failed_login(tx, user.id).await?;
        let limit = lockout::failed_login_limit(
            account.failed_login_limit,
            ctx.settings.policy.failed_login_limit,
        );
        if lockout::failure_locks(failures, limit) {
            let stamp = ctx.audit_stamp(job.account_id, Actor::System);
            // Only the report that actually locks an active user sends the notice.
            if users::lock(tx, &stamp, user.id, LockReason::FailedLogins).await? {
                record_email(
                    ctx,
                    tx,
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
    Ok(outcome)
}
