//! DeactivateUser (SPEC section 4): G1 G2 G4 (+G3 for a salesperson); the user can no
//! longer log in, every session and token is revoked and the API token rotated,
//! integrations are disabled and email sync frozen, active subscriptions canceled; the
//! salesperson effects; opportunities handed over (`reassign_to`, else the leader of the
//! user's first team, else of the account's first team: G5); teams left; the email
//! blocklisted unless `allow_reactivation_on_purchase`.
//!
//! Order, as in a careful admin tool: first cut access (tokens), then hand over and
//! disable, then record the status; all in one transaction, so others see all or nothing.

use lifecycle_jobs::{DeactivateUser, Job};

use super::deactivate_salesperson::{
    LicenseRelease, apply_effects, check_not_last_license_with_phones,
};
use super::{JobContext, JobError, JobTx, Outcome, Parties, load_assignee, load_parties};
use crate::domain::guards;
use crate::domain::reassignment::{NoRecipient, opportunity_recipient};
use crate::domain::user::UserStatus;
use crate::store::{access, licenses, records, teams, users};

impl super::Apply for DeactivateUser {
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
    job: &DeactivateUser,
) -> Result<Outcome, JobError> {
    // The seat is billed to the end of the cycle running when the deactivation was asked
    // for, not when this attempt runs (a backlog, a retry).
    let requested_at = job.requested_instant(ctx.enqueued_at_or_now())?;
    // Lock before reading what the guards decide on: the user (and the one named to
    // receive their records, who must stay active), then the license, then the pool (G3).
    // An activation or reactivation of the same user waits for this job, or this for it.
    let mut locked = vec![job.user_id];
    locked.extend(job.reassign_to);
    users::lock_in_account(tx, job.account_id, &locked).await?;
    let Parties {
        account,
        target,
        actor,
    } = load_parties(tx, job.account_id, job.user_id, job.actor).await?;
    if target.status == UserStatus::Deactivated {
        return Ok(Outcome::NothingToDo(format!(
            "user {} is already deactivated",
            target.id
        )));
    }

    guards::actor_may_manage(job.account_id, actor.as_ref(), &target)?;
    guards::actor_outranks_or_equals(actor.as_ref(), &target)?;
    let led_teams = teams::led_team_names(tx, target.id).await?;
    guards::leads_no_team(target.id, &led_teams)?;
    let license = licenses::live_for_user_locked(tx, target.id).await?;
    if let Some(license) = license.as_ref().filter(|l| l.state == "active") {
        check_not_last_license_with_phones(tx, job.account_id, license).await?;
    }

    // G5: who receives the opportunities (and the contacts, when named).
    let explicit = match job.reassign_to {
        Some(id) => Some(load_assignee(tx, job.account_id, id).await?),
        None => None,
    };
    let first_team_leader = match teams::first_team_leader(tx, target.id).await? {
        Some(id) => users::find_person(tx, id).await?,
        None => None,
    };
    let account_first_team_leader =
        match teams::account_first_team_leader(tx, job.account_id).await? {
            Some(id) => users::find_person(tx, id).await?,
            None => None,
        };
    let recipient = opportunity_recipient(
        job.account_id,
        target.id,
        explicit.as_ref(),
        first_team_leader.as_ref(),
        account_first_team_leader.as_ref(),
    );
    let owns_opportunities = records::count_opportunities(tx, target.id).await? > 0;
    let recipient = match recipient {
        Ok(id) => Some(id),
        // Nobody needs to receive what the user does not own.
        Err(NoRecipient::NobodyActive { .. }) if !owns_opportunities => None,
        Err(NoRecipient::Refused(refusal)) => return Err(refusal.into()),
        Err(nobody) => return Err(JobError::Precondition(nobody.to_string())),
    };

    let stamp = ctx.audit_stamp(job.account_id, job.actor);
    let user = users::find(tx, target.id)
        .await?
        .ok_or_else(|| JobError::NotFound(format!("user {} does not exist", target.id)))?;
    access::revoke_all_tokens(tx, &stamp, target.id).await?;
    access::rotate_api_token(tx, &stamp, target.id).await?;
    access::disable_integrations(tx, &stamp, target.id).await?;
    access::cancel_subscriptions(tx, &stamp, target.id).await?;
    apply_effects(
        tx,
        &stamp,
        &account,
        target.id,
        license.as_ref().map(|license| LicenseRelease {
            license,
            requested_at,
        }),
        job.reassign_to,
    )
    .await?;
    if let Some(recipient) = recipient {
        records::reassign_opportunities(tx, &stamp, target.id, recipient).await?;
    }
    teams::leave_all_teams(tx, &stamp, target.id).await?;
    if !job.allow_reactivation_on_purchase {
        users::block_email(tx, &stamp, &user.email).await?;
    }
    users::mark_deactivated(tx, &stamp, &user).await?;
    Ok(Outcome::Applied)
}
