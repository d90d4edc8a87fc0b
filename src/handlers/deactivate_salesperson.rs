//! DeactivateSalesperson (SPEC section 4): G1 G3 G4; the license goes `releasing`, billed to
//! the end of the billing cycle, then freed by a ReleaseLicense job at that instant; the
//! user leaves every playbook; contacts are unassigned (or kept, by policy, or moved);
//! open tasks are unassigned and marked transferable; the user keeps platform access.

use chrono::{DateTime, Utc};
use lifecycle_jobs::{DeactivateSalesperson, Job, ReleaseLicense};

use super::{JobContext, JobError, JobTx, Outcome, Parties, load_assignee, load_parties};
use crate::domain::billing::current_cycle_end;
use crate::domain::guards;
use crate::domain::user::ContactsPolicy;
use crate::store::accounts::AccountRow;
use crate::store::audit::AuditStamp;
use crate::store::licenses::LicenseRow;
use crate::store::records::{self, TRANSFER_REASON_DEACTIVATED};
use crate::store::{Tx, accounts, audit, licenses, users};

impl super::Apply for DeactivateSalesperson {
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
    job: &DeactivateSalesperson,
) -> Result<Outcome, JobError> {
    // The cycle billed is the one running when the deactivation was asked for, not when
    // this attempt runs: a backlog or a retry past the cycle's end must not bill a month more.
    let requested_at = job.requested_instant(ctx.enqueued_at_or_now())?;
    // Lock before reading what the guards decide on: the user (and the one receiving the
    // contacts, who must stay active), then the license, then the pool (in G3).
    let mut locked = vec![job.user_id];
    locked.extend(job.reassign_contacts_to);
    users::lock_in_account(tx, job.account_id, &locked).await?;

    let Parties {
        account,
        target,
        actor,
    } = load_parties(tx, job.account_id, job.user_id, job.actor).await?;
    guards::actor_may_manage(job.account_id, actor.as_ref(), &target)?;
    guards::actor_outranks_or_equals(actor.as_ref(), &target)?;

    let license = licenses::live_for_user_locked(tx, target.id)
        .await?
        .ok_or_else(|| {
            JobError::Precondition(format!("user {} holds no salesperson license", target.id))
        })?;
    if license.state == "releasing" {
        return Ok(Outcome::NothingToDo(format!(
            "license {} is already releasing",
            license.id
        )));
    }
    check_not_last_license_with_phones(tx, job.account_id, &license).await?;

    let contacts_to = match job.reassign_contacts_to {
        None => None,
        Some(assignee_id) => Some(load_assignee(tx, job.account_id, assignee_id).await?.id),
    };

    let stamp = ctx.audit_stamp(job.account_id, job.actor);
    apply_effects(
        tx,
        &stamp,
        &account,
        target.id,
        Some(LicenseRelease {
            license: &license,
            requested_at,
        }),
        contacts_to,
    )
    .await?;
    Ok(Outcome::Applied)
}

/// G3 for the license about to be removed (its row locked by the caller). The pool of
/// its country is locked first: two jobs removing the last two licenses of a country
/// would otherwise each count the other's as still active, and both pass. The second
/// waits here until the first commits, then counts what it left.
pub async fn check_not_last_license_with_phones(
    tx: &mut Tx,
    account_id: i64,
    license: &LicenseRow,
) -> Result<(), JobError> {
    licenses::lock_pool(tx, account_id, &license.country).await?;
    let active_in_country = licenses::count_active_in(tx, account_id, &license.country).await?;
    let phones_in_country =
        accounts::active_phone_numbers_in(tx, account_id, &license.country).await?;
    guards::not_last_license_with_phones(&license.country, active_in_country, phones_in_country)?;
    Ok(())
}

/// A live license a deactivation releases, and when the deactivation was asked for: the
/// seat is billed to the end of the cycle running then, however late the job runs.
pub struct LicenseRelease<'a> {
    pub license: &'a LicenseRow,
    pub requested_at: DateTime<Utc>,
}

/// The salesperson effects, shared with DeactivateUser: the `active` license (if any)
/// goes `releasing` until the end of the billing cycle running when the deactivation was
/// asked for (that end may have passed by now: the seat is then freed at once), with its
/// ReleaseLicense job recorded in this transaction; playbooks left; contacts unassigned,
/// kept by policy or moved to `contacts_to`; open tasks unassigned and transferable.
pub async fn apply_effects(
    tx: &mut JobTx,
    stamp: &AuditStamp,
    account: &AccountRow,
    user_id: i64,
    release: Option<LicenseRelease<'_>>,
    contacts_to: Option<i64>,
) -> Result<(), JobError> {
    // The license goes `releasing` only if it still is `active` (the callers hold its row
    // locked, so it is): when it is not, another job released it already, and this one
    // writes no audit row and schedules no release claiming it did.
    let started = match release.filter(|release| release.license.state == "active") {
        Some(LicenseRelease {
            license,
            requested_at,
        }) => {
            let release_at = current_cycle_end(
                requested_at,
                account.time_zone(),
                account.billing_anchor_day.clamp(1, 31) as u32,
            );
            licenses::start_releasing(tx, license.id, release_at)
                .await?
                .then_some((license, release_at))
        }
        None => None,
    };
    if let Some((license, release_at)) = started {
        let detail = serde_json::json!({
            "state": { "from": "active", "to": "releasing" },
            "release_at": release_at,
            "country": license.country,
        });
        audit::record(
            tx,
            stamp,
            "salesperson_license",
            license.id,
            "releasing",
            &detail.to_string(),
        )
        .await?;
        // The seat is freed at the end of the cycle by a job recorded in this same
        // transaction: it exists exactly when the deactivation does.
        let release = ReleaseLicense {
            account_id: account.id,
            license_id: license.id,
        };
        let key = format!(
            "{}:{}:{}",
            ReleaseLicense::NAME,
            license.id,
            release_at.timestamp()
        );
        tx.enqueue(&release, key, Some(release_at))?;
    }

    records::leave_all_playbooks(tx, stamp, user_id).await?;
    match (contacts_to, account.contacts_policy()) {
        (Some(to), _) => {
            records::reassign_contacts(tx, stamp, user_id, Some(to)).await?;
        }
        (None, ContactsPolicy::Unassign) => {
            records::reassign_contacts(tx, stamp, user_id, None).await?;
        }
        (None, ContactsPolicy::Keep) => {}
    }
    records::release_open_tasks(tx, stamp, user_id, TRANSFER_REASON_DEACTIVATED).await?;
    Ok(())
}
