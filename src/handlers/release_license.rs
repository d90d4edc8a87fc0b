//! ReleaseLicense (SPEC section 4): frees the seat of a `releasing` license whose time has
//! come; a no-op otherwise.

use lifecycle_jobs::{Actor, ReleaseLicense};

use super::{JobContext, JobError, JobTx, Outcome};
use crate::store::audit::AuditStamp;
use crate::store::{StoreError, Tx, audit, licenses};

impl super::Apply for ReleaseLicense {
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
    job: &ReleaseLicense,
) -> Result<Outcome, JobError> {
    // Locked: a reclaim of this license either committed before (it is `active` now, and
    // this is a no-op) or waits until this job commits (and finds it `released`).
    let license = licenses::find_locked(tx, job.license_id)
        .await?
        .filter(|license| license.account_id == job.account_id)
        .ok_or_else(|| {
            JobError::NotFound(format!(
                "license {} does not exist in account {}",
                job.license_id, job.account_id
            ))
        })?;
    let now = ctx.clock.now();
    let outcome = match (license.state.as_str(), license.release_at) {
        ("releasing", Some(release_at)) if release_at > now => {
            // Fired early (clock skew between machines): try again when it is due.
            return Err(JobError::NotYetDue(format!(
                "license {} is not due for release until {release_at}",
                license.id
            )));
        }
        ("releasing", _) => {
            let stamp = ctx.audit_stamp(job.account_id, Actor::System);
            if free_seat(tx, &stamp, license.id, now).await? {
                Outcome::Applied
            } else {
                // Read `releasing`, yet not released by this statement (no `release_at`):
                // nothing was freed, so no "released" row says it was.
                Outcome::NothingToDo(format!("license {} was not released", license.id))
            }
        }
        (state, _) => Outcome::NothingToDo(format!("license {} is {state}", license.id)),
    };
    Ok(outcome)
}

/// The release itself, shared with the ReleaseDueLicenses sweep: `releasing -> released`
/// when due by `now`, audited. The caller holds the license's row lock
/// ([`licenses::find_locked`]), so a reclaim that committed first left it `active` and it
/// is not touched. Returns whether it was freed.
pub async fn free_seat(
    tx: &mut Tx,
    stamp: &AuditStamp,
    license_id: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, StoreError> {
    if !licenses::release_if_due(tx, license_id, now).await? {
        return Ok(false);
    }
    let detail = serde_json::json!({ "state": { "from": "releasing", "to": "released" } });
    audit::record(
        tx,
        stamp,
        "salesperson_license",
        license_id,
        "released",
        &detail.to_string(),
    )
    .await?;
    Ok(true)
}
