//! UnlockUser (SPEC section 4): `locked -> active`, the failure counter reset; a user
//! locked for inactivity gets a fresh activity clock; a verified password reset lifts only
//! a `failed_logins` lock. The user is emailed that the account is open again.

use lifecycle_jobs::{Job, UnlockUser};

use super::outbox::record_email;
use super::{JobContext, JobError, Outcome, Parties, load_parties, load_user};
use crate::domain::user::{LockReason, UserStatus};
use crate::domain::{guards, lockout};
use crate::mail::render::Template;
use crate::queue::AfterCommit;
use crate::store::users;

impl super::Handle for UnlockUser {
    fn subject(&self) -> (i64, Option<i64>) {
        (self.account_id, Some(self.user_id))
    }

    fn run(&self, ctx: &JobContext<'_>) -> impl Future<Output = Result<Outcome, JobError>> + Send {
        run(ctx, self)
    }
}

pub async fn run(ctx: &JobContext<'_>, job: &UnlockUser) -> Result<Outcome, JobError> {
    let Some(mut tx) = ctx.begin_once().await? else {
        return Ok(Outcome::AlreadyApplied);
    };
    let Parties {
        account,
        target,
        actor,
    } = load_parties(&mut tx, job.account_id, job.user_id, job.actor).await?;
    guards::actor_may_manage(job.account_id, actor.as_ref(), &target)?;
    let user = load_user(&mut tx, job.account_id, target.id).await?;
    if user.status() != UserStatus::Locked {
        ctx.commit_applied(tx, UnlockUser::NAME, AfterCommit::default())
            .await?;
        return Ok(Outcome::NothingToDo(format!(
            "user {} is {}, not locked",
            user.id, user.status
        )));
    }
    let reason = user.lock_reason.as_deref().and_then(LockReason::parse);
    let unlock = lockout::unlock(reason, job.via)?;

    let stamp = ctx.audit_stamp(job.account_id, job.actor);
    users::unlock(&mut tx, &stamp, &user, unlock.fresh_activity_clock).await?;
    let after_commit = record_email(
        ctx,
        &mut tx,
        &account,
        &user,
        Template::Unlocked,
        serde_json::json!({}),
    )
    .await?;
    ctx.commit_applied(tx, UnlockUser::NAME, after_commit)
        .await?;
    Ok(Outcome::Applied)
}
