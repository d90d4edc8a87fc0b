//! ReactivateUser (SPEC section 4): `deactivated -> active` and off the blocklist; nothing
//! else comes back (subscriptions, teams, opportunities, transferred tasks stay where they
//! went; permissions are as they were). With `license_country` the user is a salesperson
//! again, only if a seat is free: a license still `releasing` there is reclaimed instead.
//! All or nothing: without a free seat nothing changes.

use lifecycle_jobs::ReactivateUser;

use super::activate_salesperson::take_license;
use super::outbox::record_email;
use super::{JobContext, JobError, JobTx, Outcome, Parties, load_parties, load_user};
use crate::domain::guards;
use crate::domain::user::UserStatus;
use crate::mail::render::Template;
use crate::store::{licenses, users};

impl super::Apply for ReactivateUser {
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
    job: &ReactivateUser,
) -> Result<Outcome, JobError> {
    // Locks in the order every handler takes them: the user, then (below) the license,
    // then the pool. A ReleaseLicense of the user's `releasing` license either committed
    // before the license is read here (then it is `released`, and a free seat is taken
    // instead) or waits until this job commits (then it finds the license reclaimed).
    users::lock_in_account(tx, job.account_id, &[job.user_id]).await?;
    let Parties {
        account,
        target,
        actor,
    } = load_parties(tx, job.account_id, job.user_id, job.actor).await?;
    guards::actor_may_manage(job.account_id, actor.as_ref(), &target)?;
    match target.status {
        UserStatus::Deactivated => {}
        UserStatus::Active if job.license_country.is_some() => {}
        UserStatus::Active => {
            return Ok(Outcome::NothingToDo(format!(
                "user {} is already active",
                target.id
            )));
        }
        UserStatus::Pending => {
            return Err(JobError::Precondition(format!(
                "user {} is pending: they confirm their account with the emailed link",
                target.id
            )));
        }
        UserStatus::Locked => {
            return Err(JobError::Precondition(format!(
                "user {} is locked, not deactivated: unlock them instead",
                target.id
            )));
        }
    }

    let stamp = ctx.audit_stamp(job.account_id, job.actor);
    let user = load_user(tx, job.account_id, target.id).await?;
    if users::reactivate(tx, &stamp, user.id).await? {
        users::unblock_email(tx, &stamp, &user.email).await?;
        record_email(
            ctx,
            tx,
            &account,
            &user,
            Template::Reactivated,
            serde_json::json!({}),
        )
        .await?;
    }
    if let Some(country) = &job.license_country {
        let held = licenses::live_for_user_locked(tx, user.id).await?;
        take_license(tx, &stamp, user.id, country, held.as_ref()).await?;
    }
    Ok(Outcome::Applied)
}
