//! ConfirmUser (SPEC section 4): `pending -> active` with the secret of the single-use
//! link the user was emailed. An unknown, used, superseded or expired link is refused.

use lifecycle_jobs::ConfirmUser;

use super::{JobContext, JobError, JobTx, Outcome, load_user};
use crate::domain::confirmation::{LinkRefusal, LinkState, check_link};
use crate::domain::user::UserStatus;
use crate::store::{confirmation_links, users};

impl super::Apply for ConfirmUser {
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
    job: &ConfirmUser,
) -> Result<Outcome, JobError> {
    let user = load_user(tx, job.account_id, job.user_id).await?;
    let now = ctx.clock.now();
    let link = confirmation_links::find(tx, user.id, &job.token_digest()).await?;
    check_link(
        link.as_ref()
            .map(|link| LinkState {
                expires_at: link.expires_at,
                used_at: link.used_at,
                superseded_at: link.superseded_at,
            })
            .as_ref(),
        now,
    )?;
    let Some(link) = link else {
        return Err(LinkRefusal::Unknown.into());
    };
    if user.status() != UserStatus::Pending {
        return Err(JobError::Precondition(format!(
            "user {} is {}, not pending: there is nothing to confirm",
            user.id, user.status
        )));
    }
    // The user confirms themselves: the audit names them.
    let stamp = ctx.audit_stamp(job.account_id, format!("user:{}", user.id));
    if !confirmation_links::mark_used(tx, link.id, now).await? {
        return Err(LinkRefusal::AlreadyUsed(now).into());
    }
    users::confirm(tx, &stamp, user.id).await?;
    Ok(Outcome::Applied)
}
