//! PurchaseMade (SPEC section 4): a purchase by the email of a deactivated customer who
//! allowed it (whose email is not on the blocklist) reactivates them; a blocklisted email is
//! refused with the reason.

use lifecycle_jobs::{Actor, Job, PurchaseMade};

use super::outbox::record_email;
use super::{JobContext, JobError, Outcome, load_account};
use crate::domain::user::UserStatus;
use crate::mail::render::Template;
use crate::queue::AfterCommit;
use crate::store::{audit, users};

impl super::Handle for PurchaseMade {
    fn subject(&self) -> (i64, Option<i64>) {
        (self.account_id, None)
    }

    fn run(&self, ctx: &JobContext<'_>) -> impl Future<Output = Result<Outcome, JobError>> + Send {
        run(ctx, self)
    }
}

pub async fn run(ctx: &JobContext<'_>, job: &PurchaseMade) -> Result<Outcome, JobError> {
    let Some(mut tx) = ctx.begin_once().await? else {
        return Ok(Outcome::AlreadyApplied);
    };
    let account = load_account(&mut tx, job.account_id).await?;
    if users::email_blocked(&mut tx, job.account_id, &job.email).await? {
        return Err(JobError::Precondition(format!(
            "the email {} is on the account's blocklist: its user was deactivated without allowing reactivation on purchase",
            job.email
        )));
    }
    let user = users::find_by_email(&mut tx, job.account_id, &job.email).await?;
    let mut after_commit = AfterCommit::default();
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
            ctx.subject.note_user(user.id);
            let stamp = ctx.audit_stamp(job.account_id, Actor::System);
            users::reactivate(&mut tx, &stamp, user.id).await?;
            let detail = serde_json::json!({ "purchase_reference": job.purchase_reference });
            audit::record(
                &mut tx,
                &stamp,
                "user",
                user.id,
                "reactivated_by_purchase",
                &detail.to_string(),
            )
            .await?;
            after_commit = record_email(
                ctx,
                &mut tx,
                &account,
                &user,
                Template::Reactivated,
                serde_json::json!({}),
            )
            .await?;
            Outcome::Applied
        }
    };
    ctx.commit_applied(tx, PurchaseMade::NAME, after_commit)
        .await?;
    Ok(outcome)
}
