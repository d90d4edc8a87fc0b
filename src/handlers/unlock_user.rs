//! UnlockUser (SPEC section 4): `locked -> active`, the failure counter reset; a user
//! locked for inactivity gets a fresh activity clock; a verified password reset lifts only
//! a `failed_logins` lock. The user is emailed that the account is open again.

use lifecycle_jobs::UnlockUser;

use super::outbox::record_email;
use super::{JobContext, JobError, JobTx, Outcome, Parties, load_parties, load_user};
use crate::domain::user::{LockReason, UserStatus};
use crate::domain::{guards, lockout};
use crate::mail::render::Template;
use crate::store::users;

impl super::Apply for UnlockUser {
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
    job: &UnlockUser,
) -> Result<Outcome, JobError> {
    let Parties {
        account,
        target,
        actor,
    } = load_parties(tx, job.account_id, job.user_id, job.actor).await?;
    guards::actor_may_manage(job.account_id, actor.as_ref(), &target)?;
    let user = load_user(tx, job.account_id, target.id).await?;
    if user.status() != UserStatus::Locked {
        return Ok(Outcome::NothingToDo(format!(
            "user {} is {}, not locked",
            user.id, user.status
        )));
    }
    let reason = user.lock_reason.as_deref().and_then(LockReason::parse);
    let unlock = lockout::unlock(reason, job.via)?;

    let stamp = ctx.audit_stamp(job.account_id, job.actor);
    users::unlock(tx, &stamp, &user, unlock.fresh_activity_clock).await?;
    record_email(
        ctx,
        tx,
        &account,
        &user,
        Template::Unlocked,
        serde_json::json!({}),
    )
    .await?;
    Ok(Outcome::Applied)
}
