//! ActivateSalesperson (SPEC section 4): an active user takes one seat of the account's
//! license pool in a country, atomically: of two jobs racing for the last seat exactly one
//! wins; the other is refused with "no free license in <country>".

use lifecycle_jobs::ActivateSalesperson;

use super::{JobContext, JobError, JobTx, Outcome, Parties, load_parties};
use crate::domain::guards;
use crate::domain::seats::check_free_seat;
use crate::domain::user::UserStatus;
use crate::store::audit::{self, AuditStamp};
use crate::store::licenses::{self, LicenseRow};
use crate::store::{Tx, users};

impl super::Apply for ActivateSalesperson {
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
    job: &ActivateSalesperson,
) -> Result<Outcome, JobError> {
    // The user's status is read under its row lock: a deactivation of the same user either
    // committed before (then this one is refused) or waits until this one commits (then it
    // sees the license and puts it in `releasing`).
    users::lock_in_account(tx, job.account_id, &[job.user_id]).await?;
    let Parties { target, actor, .. } =
        load_parties(tx, job.account_id, job.user_id, job.actor).await?;
    guards::actor_may_manage(job.account_id, actor.as_ref(), &target)?;
    if target.status != UserStatus::Active {
        return Err(JobError::Precondition(format!(
            "user {} is {}: only an active user can be a salesperson",
            target.id, target.status
        )));
    }
    let stamp = ctx.audit_stamp(job.account_id, job.actor);
    let held = licenses::live_for_user_locked(tx, target.id).await?;
    let change = take_license(tx, &stamp, target.id, &job.country, held.as_ref()).await?;
    Ok(match change {
        LicenseChange::AlreadyActive => {
            Outcome::NothingToDo(format!("already a salesperson in {}", job.country))
        }
        LicenseChange::Reclaimed | LicenseChange::Took => Outcome::Applied,
    })
}

/// How a user came to hold an active license.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LicenseChange {
    /// They already held one in that country.
    AlreadyActive,
    /// Their license in that country was `releasing`; it is active again, on the same seat.
    Reclaimed,
    /// A free seat of the pool was taken.
    Took,
}

/// Gives the user an active license in `country`: keeps one they hold, reclaims one still
/// `releasing` there (no second seat, no double charge), or takes a free seat of the pool.
/// Shared with ReactivateUser. `held` is the user's live license as read with its row
/// locked ([`licenses::live_for_user_locked`]), after the user's row.
pub async fn take_license(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
    country: &str,
    held: Option<&LicenseRow>,
) -> Result<LicenseChange, JobError> {
    match held {
        Some(license) if license.country == country && license.state == "active" => {
            Ok(LicenseChange::AlreadyActive)
        }
        Some(license) if license.country == country => {
            if !licenses::reclaim(tx, license.id).await? {
                // No longer `releasing` (released since it was read): the seat is gone,
                // so this is a newcomer taking a free seat, if one is left.
                return take_free_seat(tx, stamp, user_id, country).await;
            }
            let detail = serde_json::json!({
                "state": { "from": "releasing", "to": "active" },
                "release_at_was": license.release_at,
                "country": country,
            });
            audit::record(
                tx,
                stamp,
                "salesperson_license",
                license.id,
                "reclaimed",
                &detail.to_string(),
            )
            .await?;
            Ok(LicenseChange::Reclaimed)
        }
        Some(license) => Err(JobError::Precondition(format!(
            "user {user_id} holds a license in {} ({}); one license per user: it must be released before one in {country} is taken",
            license.country, license.state
        ))),
        None => take_free_seat(tx, stamp, user_id, country).await,
    }
}

/// Takes a free seat of the pool of `country` for a user who holds no live license.
async fn take_free_seat(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
    country: &str,
) -> Result<LicenseChange, JobError> {
    // Takers of one pool queue on its row here; the count below then sees every seat a
    // job before us took.
    let seats = licenses::lock_pool(tx, stamp.account_id, country).await?;
    let taken = licenses::seats_taken(tx, stamp.account_id, country).await?;
    check_free_seat(country, seats, taken)?;
    let license_id =
        licenses::insert_active(tx, stamp.account_id, user_id, country, stamp.at).await?;
    let detail = serde_json::json!({
        "state": "active",
        "user_id": user_id,
        "country": country,
        "seats_taken": taken + 1,
    });
    audit::record(
        tx,
        stamp,
        "salesperson_license",
        license_id,
        "activated",
        &detail.to_string(),
    )
    .await?;
    Ok(LicenseChange::Took)
}
