//! ReassignRecords (SPEC section 4): contacts, open tasks and opportunities move from one
//! user to an active user of the same account (G5); completed tasks stay.

use lifecycle_jobs::ReassignRecords;

use super::{JobContext, JobError, JobTx, Outcome, Parties, load_assignee, load_parties};
use crate::domain::guards;
use crate::store::{records, users};

impl super::Apply for ReassignRecords {
    fn subject(&self) -> (i64, Option<i64>) {
        (self.account_id, Some(self.from_user_id))
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
    job: &ReassignRecords,
) -> Result<Outcome, JobError> {
    // G5 reads the receiver's status: both users stay as read until this commits (a
    // deactivation of the receiver waits, then moves these records on), in the order
    // every handler locks users.
    users::lock_in_account(tx, job.account_id, &[job.from_user_id, job.to_user_id]).await?;
    let Parties { target, actor, .. } =
        load_parties(tx, job.account_id, job.from_user_id, job.actor).await?;
    guards::actor_may_manage(job.account_id, actor.as_ref(), &target)?;
    let to = load_assignee(tx, job.account_id, job.to_user_id).await?;

    let stamp = ctx.audit_stamp(job.account_id, job.actor);
    records::reassign_contacts(tx, &stamp, target.id, Some(to.id)).await?;
    records::reassign_open_tasks(tx, &stamp, target.id, to.id).await?;
    records::reassign_opportunities(tx, &stamp, target.id, to.id).await?;
    Ok(Outcome::Applied)
}
