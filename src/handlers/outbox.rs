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
    let email = EmailTo {
        account,
        user,
        template,
        variables,
    };
    record_emails(ctx, tx, vec![email]).await
}

/// One email of [`record_emails`]: the template for the user of the account, with its own
/// variables.
pub struct EmailTo<'a> {
    pub account: &'a AccountRow,
    pub user: &'a UserRow,
    pub template: Template,
    pub variables: serde_json::Value,
}

/// [`record_email`] for many users (of one account or many) at once: the messages in one
/// statement and their SendEmail jobs with the transaction's other follow-ups (one more at
/// commit).
pub async fn record_emails(
    ctx: &JobContext<'_>,
    tx: &mut JobTx,
    emails: Vec<EmailTo<'_>>,
) -> Result<(), JobError> {
    let variables: Vec<serde_json::Value> = emails
        .iter()
        .map(|email| every_email_has(email.account, email.user, email.variables.clone()))
        .collect();
    let names: Vec<String> = emails.iter().map(|email| email.user.full_name()).collect();
    let now = ctx.clock.now();
    let rows: Vec<NewEmail<'_>> = emails
        .iter()
        .zip(&variables)
        .zip(&names)
        .map(|((email, variables), name)| NewEmail {
            account_id: email.account.id,
            user_id: Some(email.user.id),
            template: email.template.name(),
            language: &email.user.language,
            to_address: &email.user.email,
            to_name: name,
            variables,
            created_by_job: ctx.job_id,
            created_at: now,
        })
        .collect();
    for (email_id, row) in emails::insert_many(tx, &rows).await?.into_iter().zip(&rows) {
        let send = SendEmail {
            account_id: row.account_id,
            email_id,
        };
        tx.enqueue(&send, format!("{}:{email_id}", SendEmail::NAME), None)?;
    }
    Ok(())
}

/// The variables every email has (names, account) plus the template's own.
fn every_email_has(
    account: &AccountRow,
    user: &UserRow,
    variables: serde_json::Value,
) -> serde_json::Value {
    let mut all = serde_json::json!({
        "first_name": user.first_name,
        "last_name": user.last_name,
        "account_name": account.name,
    });
    if let (Some(all), serde_json::Value::Object(extra)) = (all.as_object_mut(), variables) {
        all.extend(extra);
    }
    all
}
