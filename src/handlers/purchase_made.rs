//! PurchaseMade (SPEC section 4): a purchase by the email of a deactivated customer who
//! allowed it (whose email is not on the blocklist) reactivates them; a blocklisted email is
//! refused with the reason.

use lifecycle_jobs::{Actor, PurchaseMade};

use super::outbox::record_email;
use super::{JobContext, JobError, JobTx, Outcome, load_account};
use crate::domain::user::UserStatus;
use crate::mail::render::Template;
use crate::store::{audit, users};

impl super::Apply for PurchaseMade {
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
    job: &PurchaseMade,
) -> Result<Outcome, JobError> {
    let account = load_account(tx, job.account_id).await?;
    if users::email_blocked(tx, job.account_id, &job.email).await? {
        return Err(JobError::Precondition(format!(
            "the email {} is on the account's blocklist: its user was deactivated without allowing reactivation on purchase",
            job.email
        )));
    }
    let user = users::find_by_email(tx, job.account_id, &job.email).await?;
    let outcome = match user {
        None => Outcome::NothingToDo(format!(
            "no user of the account has the email {}",
            job.email
        )),
        Some(user) if user.kind != "customer" => Outcome::NothingToDo(format!(
            "user {} is an employee: a purchase reactivates customers only",
            user.id
        )),
        Some(user) if user.status() != UserStatus::Deactivated => Outcome::NothingToDo(format!(
            "customer {} is {}, not deactivated",
            user.id, user.status
        )),
        Some(user) => {
            tx.about_user(user.id);
            let stamp = ctx.audit_stamp(job.account_id, Actor::System);
            users::reactivate(tx, &stamp, user.id).await?;
            let detail = serde_json::json!({ "purchase_reference": job.purchase_reference });
            audit::record(
                tx,
                &stamp,
                "user",
                user.id,
                "reactivated_by_purchase",
                &detail.to_string(),
            )
            .await?;
            record_email(
                ctx,
                tx,
                &account,
                &user,
                Template::Reactivated,
                serde_json::json!({}),
            )
            .await?;
            Outcome::Applied
        }
    };
    Ok(outcome)
}
