//! RecordActivity (SPEC section 4): a sign of use (sign-in, API call, mobile, integration
//! sync) moves an active user's last-activity time forward, never back. Not audited:
//! telemetry, written often.

use lifecycle_jobs::RecordActivity;

use super::{JobContext, JobError, JobTx, Outcome, load_user};
use crate::domain::user::UserStatus;
use crate::store::users;

impl super::Apply for RecordActivity {
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
    job: &RecordActivity,
) -> Result<Outcome, JobError> {
    // The status decides whether the activity counts: read it locked, so a racing idle
    // sweep either sees this activity or locks first (then this records nothing).
    users::lock_in_account(tx, job.account_id, &[job.user_id]).await?;
    let user = load_user(tx, job.account_id, job.user_id).await?;
    let now = ctx.clock.now();
    let at = job.at.map_or(now, |at| at.min(now));
    let outcome = if user.status() != UserStatus::Active {
        // A locked user's integration may still sync; it does not undo the lock.
        Outcome::NothingToDo(format!(
            "user {} is {}: activity is not recorded",
            user.id, user.status
        ))
    } else if users::record_activity(tx, user.id, at).await? {
        Outcome::Applied
    } else {
        Outcome::NothingToDo("a later activity is already recorded".into())
    };
    Ok(outcome)
}
