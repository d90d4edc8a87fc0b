//! DeactivateSalesperson (SPEC section 4): G1 G3 G4; the license goes `releasing`, billed to
//! the end of the billing cycle, then freed by a ReleaseLicense job at that instant; the
//! user leaves every playbook; contacts are unassigned (or kept, by policy, or moved);
//! open tasks are unassigned and marked transferable; the user keeps platform access.

use lifecycle_jobs::{DeactivateSalesperson, Job, ReleaseLicense};

use super::{JobContext, JobError, Outcome};
use crate::domain::billing::current_cycle_end;
use crate::domain::guards;
use crate::domain::user::ContactsPolicy;
use crate::queue::EnqueueRequest;
use crate::store::records::{self, TRANSFER_REASON_DEACTIVATED};
use crate::store::{accounts, audit, ledger, licenses, users};

pub async fn run(ctx: &JobContext<'_>, job: &DeactivateSalesperson) -> Result<Outcome, JobError> {
    let mut tx = ctx.store.begin().await?;
    if ledger::already_applied(&mut tx, ctx.job_id).await? {
        return Ok(Outcome::AlreadyApplied);
    }

    let account = accounts::find(&mut tx, job.account_id)
        .await?
        .ok_or_else(|| JobError::NotFound(format!("account {} does not exist", job.account_id)))?;
    let target = users::find_person(&mut tx, job.user_id)
        .await?
        .filter(|user| user.account_id == job.account_id)
        .ok_or_else(|| {
            JobError::NotFound(format!(
                "user {} does not exist in account {}",
                job.user_id, job.account_id
            ))
        })?;
    let actor =
        match job.actor.user_id() {
            None => None,
            Some(actor_id) => Some(users::find_person(&mut tx, actor_id).await?.ok_or_else(
                || JobError::NotFound(format!("actor user {actor_id} does not exist")),
            )?),
        };

    guards::actor_may_manage(job.account_id, actor.as_ref(), &target)?;
    guards::actor_outranks_or_equals(actor.as_ref(), &target)?;

    let license = licenses::live_for_user(&mut tx, target.id)
        .await?
        .ok_or_else(|| {
            JobError::Precondition(format!("user {} holds no salesperson license", target.id))
        })?;
    if license.state == "releasing" {
        ledger::mark_applied(
            &mut tx,
            ctx.job_id,
            DeactivateSalesperson::NAME,
            ctx.clock.now(),
        )
        .await?;
        tx.commit().await?;
        return Ok(Outcome::NothingToDo(format!(
            "license {} is already releasing",
            license.id
        )));
    }
    let active_in_country =
        licenses::count_active_in(&mut tx, job.account_id, &license.country).await?;
    let phones_in_country =
        accounts::active_phone_numbers_in(&mut tx, job.account_id, &license.country).await?;
    guards::not_last_license_with_phones(&license.country, active_in_country, phones_in_country)?;

    let contacts_to = match job.reassign_contacts_to {
        None => None,
        Some(assignee_id) => {
            let assignee = users::find_person(&mut tx, assignee_id)
                .await?
                .ok_or_else(|| JobError::NotFound(format!("user {assignee_id} does not exist")))?;
            guards::assignable(job.account_id, &assignee)?;
            Some(assignee_id)
        }
    };

    // Effects.
    let stamp = ctx.audit_stamp(job.account_id, job.actor);
    let release_at = current_cycle_end(
        stamp.at,
        account.time_zone(),
        account.billing_anchor_day.clamp(1, 31) as u32,
    );
    licenses::start_releasing(&mut tx, license.id, release_at).await?;
    let detail = serde_json::json!({
        "state": { "from": "active", "to": "releasing" },
        "release_at": release_at,
        "country": license.country,
    });
    audit::record(
        &mut tx,
        &stamp,
        "salesperson_license",
        license.id,
        "releasing",
        &detail.to_string(),
    )
    .await?;

    records::leave_all_playbooks(&mut tx, &stamp, target.id).await?;
    match (contacts_to, account.contacts_policy()) {
        (Some(to), _) => {
            records::reassign_contacts(&mut tx, &stamp, target.id, Some(to)).await?;
        }
        (None, ContactsPolicy::Unassign) => {
            records::reassign_contacts(&mut tx, &stamp, target.id, None).await?;
        }
        (None, ContactsPolicy::Keep) => {}
    }
    records::release_open_tasks(&mut tx, &stamp, target.id, TRANSFER_REASON_DEACTIVATED).await?;

    // The seat is freed at the end of the cycle by a job recorded in this same
    // transaction: it exists exactly when the deactivation does.
    let release = ReleaseLicense {
        account_id: job.account_id,
        license_id: license.id,
    };
    let mut request = EnqueueRequest::for_job(
        &release,
        Some(format!(
            "{}:{}:{}",
            ReleaseLicense::NAME,
            license.id,
            release_at.timestamp()
        )),
    )?;
    request.run_at_ms = Some(release_at.timestamp_millis());
    let (_, after_commit) = ctx.queue.enqueue_in(&mut tx, request).await?;

    ledger::mark_applied(&mut tx, ctx.job_id, DeactivateSalesperson::NAME, stamp.at).await?;
    tx.commit().await?;
    ctx.queue.push(after_commit).await?;
    Ok(Outcome::Applied)
}
