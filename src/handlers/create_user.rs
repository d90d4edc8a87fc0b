//! CreateUser (SPEC section 4): a `pending` user with a role and a team of the account,
//! optionally the permissions of another user, emailed their credentials and a single-use
//! confirmation link. Refused when the email is taken or blocklisted.
//!
//! The temporary password and the link's secret are not made here: the SendEmail job mints
//! them when the message goes out and stores only their hashes, so they never rest in
//! clear anywhere, not even in the mail outbox.

use lifecycle_jobs::CreateUser;

use super::outbox::record_email;
use super::{JobContext, JobError, JobTx, Outcome, load_account, load_actor};
use crate::domain::guards;
use crate::domain::user::UserStatus;
use crate::mail::render::Template;
use crate::store::users::NewPendingUser;
use crate::store::{accounts, teams, users};

impl super::Apply for CreateUser {
    fn subject(&self) -> (i64, Option<i64>) {
        (self.account_id, None)
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
    job: &CreateUser,
) -> Result<Outcome, JobError> {
    let account = load_account(tx, job.account_id).await?;
    let actor = load_actor(tx, job.actor).await?;
    guards::actor_may_manage_account(job.account_id, actor.as_ref())?;
    let role = accounts::find_role(tx, job.role_id)
        .await?
        .filter(|role| role.account_id == job.account_id)
        .ok_or_else(|| {
            JobError::NotFound(format!(
                "role {} does not exist in account {}",
                job.role_id, job.account_id
            ))
        })?;
    guards::may_grant_role(actor.as_ref(), role.id, role.rank)?;
    let team = teams::find(tx, job.team_id)
        .await?
        .filter(|team| team.account_id == job.account_id)
        .ok_or_else(|| {
            JobError::NotFound(format!(
                "team {} does not exist in account {}",
                job.team_id, job.account_id
            ))
        })?;
    if let Some(from) = job.copy_permissions_from
        && users::find_in_account(tx, job.account_id, from)
            .await?
            .is_none()
    {
        return Err(JobError::NotFound(format!(
            "copy_permissions_from: user {from} does not exist in account {}",
            job.account_id
        )));
    }
    if users::email_blocked(tx, job.account_id, &job.email).await? {
        return Err(JobError::Precondition(format!(
            "the email {} is on the account's blocklist",
            job.email
        )));
    }
    if let Some(existing) = users::find_by_email(tx, job.account_id, &job.email).await? {
        return Err(JobError::Precondition(match existing.status() {
            UserStatus::Deactivated => format!(
                "the email {} belongs to deactivated user {}: reactivate that user instead",
                job.email, existing.id
            ),
            status => format!(
                "the email {} is already used by user {} ({status})",
                job.email, existing.id
            ),
        }));
    }

    let stamp = ctx.audit_stamp(job.account_id, job.actor);
    let user_id = users::insert_pending(
        tx,
        &stamp,
        &NewPendingUser {
            account_id: job.account_id,
            kind: job.kind.as_str(),
            role_id: role.id,
            first_name: job.first_name.trim(),
            last_name: job.last_name.trim(),
            email: &job.email,
            country: &job.country,
            language: &job.language,
            simulator_only: job.simulator_only,
        },
    )
    .await?;
    tx.about_user(user_id);
    teams::join(tx, &stamp, team.id, user_id).await?;
    if let Some(from) = job.copy_permissions_from {
        users::copy_permission_overrides(tx, &stamp, from, user_id).await?;
    }
    let user = super::load_user(tx, job.account_id, user_id).await?;
    record_email(
        ctx,
        tx,
        &account,
        &user,
        Template::Credentials,
        serde_json::json!({ "email": user.email }),
    )
    .await?;
    Ok(Outcome::Applied)
}
