//! SendEmail (SPEC section 4): delivers one recorded message, once.
//!
//! The message was recorded by the change that called for it; this job only sends it, so an
//! SMTP outage retries delivery without redoing the change. It is marked `sent` right after
//! the server accepts it; a retry finds the mark and sends nothing. (The one window left is
//! a crash between the server's acceptance and that mark: the message then goes out again,
//! with the same Message-ID, so a mail system can tell it is the same one.)
//!
//! Credentials are minted here, at delivery: a new temporary password and confirmation link
//! for each attempt, only their hashes stored, the older link superseded. They exist in
//! clear only in the message on its way out.

use lifecycle_jobs::{SendEmail, sha256_hex};
use serde_json::{Value, json};

use super::{JobContext, JobError, Outcome, load_account, load_user};
use crate::domain::confirmation;
use crate::domain::credentials::{hash_password, new_link_secret, new_temporary_password};
use crate::domain::user::UserStatus;
use crate::mail::render::{Template, render};
use crate::mail::{MailError, OutgoingEmail, format_instant};
use crate::store::emails::{self, EmailRow};
use crate::store::{confirmation_links, users};

pub async fn run(ctx: &JobContext<'_>, job: &SendEmail) -> Result<Outcome, JobError> {
    // Look first, without the write lock: hashing a password takes a while on purpose.
    let email = {
        let mut tx = ctx.store.begin_read().await?;
        let email = load_email(&mut tx, job).await?;
        tx.commit().await?;
        email
    };
    if let Some(done) = already_settled(&email) {
        return Ok(done);
    }
    let template = Template::parse(&email.template).ok_or_else(|| {
        JobError::Precondition(format!(
            "message {} has an unknown template {:?}",
            email.id, email.template
        ))
    })?;
    let mut variables: Value = serde_json::from_str(&email.variables).map_err(|e| {
        JobError::Precondition(format!(
            "message {} has unreadable variables: {e}",
            email.id
        ))
    })?;
    let credentials = match template {
        Template::Credentials => {
            let password = new_temporary_password();
            let password_hash =
                hash_password(&password).map_err(|e| JobError::Precondition(e.to_string()))?;
            Some((password, password_hash, new_link_secret()))
        }
        _ => None,
    };

    // One transaction around the send: the row is locked (PostgreSQL; SQLite holds its
    // write lock) from before the message goes out until it is marked sent, so a second
    // attempt cannot send it meanwhile, and the only window for a duplicate is the commit
    // itself. Waiting for the lock after the send would widen it to the lock wait.
    let mut tx = ctx.store.begin().await?;
    if !emails::lock_pending(&mut tx, email.id).await? {
        // Settled by a concurrent attempt since we looked.
        let email = load_email(&mut tx, job).await?;
        tx.commit().await?;
        return Ok(
            already_settled(&email).unwrap_or(Outcome::NothingToDo(format!(
                "message {} is {}",
                email.id, email.state
            ))),
        );
    }
    if let Some((password, password_hash, link_secret)) = credentials {
        let user_id = email.user_id.ok_or_else(|| {
            JobError::Precondition(format!("credentials message {} has no user", email.id))
        })?;
        let user = load_user(&mut tx, job.account_id, user_id).await?;
        if user.status() != UserStatus::Pending {
            // Confirmed or deactivated meanwhile: fresh credentials would be wrong now.
            emails::cancel(&mut tx, email.id).await?;
            tx.commit().await?;
            return Ok(Outcome::NothingToDo(format!(
                "user {} is {}: credentials not sent",
                user.id, user.status
            )));
        }
        let account = load_account(&mut tx, job.account_id).await?;
        let now = ctx.clock.now();
        let expires_at = confirmation::expires_at(now, ctx.settings.mail.confirmation_ttl_hours);
        confirmation_links::replace(
            &mut tx,
            user.id,
            email.id,
            &sha256_hex(&link_secret),
            now,
            expires_at,
        )
        .await?;
        users::set_temporary_password(&mut tx, user.id, &password_hash, now).await?;
        if let Some(variables) = variables.as_object_mut() {
            variables.insert("temporary_password".into(), json!(password));
            variables.insert(
                "confirm_url".into(),
                json!(confirm_url(
                    &ctx.settings.mail.confirm_url,
                    job.account_id,
                    user.id,
                    &link_secret
                )),
            );
            variables.insert(
                "expires_at".into(),
                json!(format_instant(expires_at, account.time_zone())),
            );
        }
    }

    let rendered = match render(template, &email.language, &variables) {
        Ok(rendered) => rendered,
        Err(error) => {
            tx.commit().await?;
            return Err(JobError::Precondition(format!(
                "message {}: {error}",
                email.id
            )));
        }
    };
    let message_id = ctx.mailer.message_id(&format!(
        "lifecycle.{}.{}.{}",
        email.account_id,
        email.id,
        email.created_at.timestamp()
    ));
    let sent = ctx
        .mailer
        .send(&OutgoingEmail {
            to_name: &email.to_name,
            to_address: &email.to_address,
            message_id: &message_id,
            rendered: &rendered,
        })
        .await;
    if let Err(error) = sent {
        // The attempt stays counted; credentials minted for it were never delivered.
        tx.commit().await?;
        return Err(error.into());
    }
    emails::mark_sent(&mut tx, email.id, &message_id, ctx.clock.now()).await?;
    tx.commit().await?;
    if ctx.mailer.take_failure_after_sending() {
        return Err(
            MailError::Unavailable("failure injected after sending (test hook)".into()).into(),
        );
    }
    Ok(Outcome::Applied)
}

async fn load_email(tx: &mut crate::store::Tx, job: &SendEmail) -> Result<EmailRow, JobError> {
    emails::find(tx, job.email_id)
        .await?
        .filter(|email| email.account_id == job.account_id)
        .ok_or_else(|| {
            JobError::NotFound(format!(
                "message {} does not exist in account {}",
                job.email_id, job.account_id
            ))
        })
}

fn already_settled(email: &EmailRow) -> Option<Outcome> {
    match email.state.as_str() {
        "sent" => Some(Outcome::NothingToDo(format!(
            "message {} was sent at {}",
            email.id,
            email.sent_at.map(|at| at.to_rfc3339()).unwrap_or_default()
        ))),
        "canceled" => Some(Outcome::NothingToDo(format!(
            "message {} was canceled",
            email.id
        ))),
        _ => None,
    }
}

/// The confirmation link: the configured page with the account, the user and the secret.
fn confirm_url(base: &str, account_id: i64, user_id: i64, secret: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}account={account_id}&user={user_id}&token={secret}")
}

#[cfg(test)]
mod tests {
    use super::confirm_url;

    #[test]
    fn the_link_carries_account_user_and_secret() {
        assert_eq!(
            confirm_url("https://crm.example.com/confirm", 3, 42, "abc"),
            "https://crm.example.com/confirm?account=3&user=42&token=abc"
        );
        assert_eq!(
            confirm_url("https://crm.example.com/c?lang=es", 3, 42, "abc"),
            "https://crm.example.com/c?lang=es&account=3&user=42&token=abc"
        );
    }
}
