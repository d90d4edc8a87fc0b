//! UnlockUser (SPEC section 4): `locked -> active`, the failure counter reset; a user
//! locked for inactivity gets a fresh activity clock; a verified password reset lifts only
//! a `failed_logins` lock. The user is emailed that the account is open again.

use lifecycle_jobs::{Job, UnlockUser};

use super::outbox::record_email;
use super::{JobContext, JobError, Outcome, Parties, load_parties, load_user};
use crate::domain::user::{LockReason, UserStatus};
use crate::domain::{guards, lockout};
use crate::mail::render::Template;
use crate::store::{ledger, users};

pub async fn run(ctx: &JobContext<'_>, job: &UnlockUser) -> Result<Outcome, JobError> {
    let mut tx = ctx.store.begin().await?;
    if ledger::already_applied(&mut tx, ctx.job_id).await? {
        return Ok(Outcome::AlreadyApplied);
    }
    let Parties {
        account,
        target,
        actor,
    } = load_parties(&mut tx, job.account_id, job.user_id, job.actor).await?;
    guards::actor_may_manage(job.account_id, actor.as_ref(), &target)?;
    let user = load_user(&mut tx, job.account_id, target.id).await?;
    if user.status() != UserStatus::Locked {
        ledger::mark_applied(&mut tx, ctx.job_id, UnlockUser::NAME, ctx.clock.now()).await?;
        tx.commit().await?;
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
    ledger::mark_applied(&mut tx, ctx.job_id, UnlockUser::NAME, stamp.at).await?;
    tx.commit().await?;
    ctx.queue.push(after_commit).await?;
    Ok(Outcome::Applied)
}
