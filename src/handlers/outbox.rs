//! The emails a change calls for: recorded in the change's own transaction together with
//! the SendEmail job that delivers each, so mail goes out exactly when the change commits,
//! and an SMTP outage delays it without redoing the change.

use lifecycle_jobs::{Job, SendEmail};

use super::{JobContext, JobError, JobTx};
use crate::mail::render::Template;
use crate::store::accounts::AccountRow;
use crate::store::emails::{self, NewEmail};
use crate::store::users::UserRow;

/// Records `template` for `user` with the variables every email has (names, account) plus
/// `variables`, which must hold no secret: secrets are minted when the message is sent.
pub async fn record_email(
    ctx: &JobContext<'_>,
    tx: &mut JobTx,
    account: &AccountRow,
    user: &UserRow,
    template: Template,
    variables: serde_json::Value,
) -> Result<(), JobError> {
    let mut all = serde_json::json!({
        "first_name": user.first_name,
        "last_name": user.last_name,
        "account_name": account.name,
    });
    if let (Some(all), serde_json::Value::Object(extra)) = (all.as_object_mut(), variables) {
        all.extend(extra);
    }
    let email_id = emails::insert(
        tx,
        &NewEmail {
            account_id: account.id,
            user_id: Some(user.id),
            template: template.name(),
            language: &user.language,
            to_address: &user.email,
            to_name: &user.full_name(),
            variables: &all,
            created_by_job: ctx.job_id,
            created_at: ctx.clock.now(),
        },
    )
    .await?;
    let send = SendEmail {
        account_id: account.id,
        email_id,
    };
    tx.enqueue(&send, format!("{}:{email_id}", SendEmail::NAME), None)
}
