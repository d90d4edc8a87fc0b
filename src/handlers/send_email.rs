//! SendEmail (SPEC section 4): delivers one recorded message, once.
//!
//! The message was recorded by the change that called for it; this job only sends it, so an
//! SMTP outage retries delivery without redoing the change.
//!
//! No transaction is open while the SMTP server is talked to (it may take up to
//! `mail.timeout_secs` per command; on SQLite a write transaction would stop every other
//! write for that long). Instead, three steps:
//! 1. one short transaction claims the message (still `pending`, with this attempt's name
//!    and the time) and stores the hashes of the credentials it will carry;
//! 2. the message goes out, outside any transaction;
//! 3. another short transaction marks it `sent`; a failed send clears the claim instead, so
//!    the retry can send at once.
//!
//! A claim keeps a concurrent second attempt from sending: it finds the message claimed
//! and tries again later. A claim older than the lease ([`claim_lease_ms`]) was left by an
//! attempt that died mid-send and is taken over; so is, at once, one left by an earlier
//! attempt of the same job (its worker died: the ledger runs one attempt of a job at a
//! time), as the retry after a crash did when the claim was a row lock. The window for a
//! duplicate is the one that exists anyway: an attempt that dies after the server took the
//! message, before the mark (or one that outlives its lease), sends it again, with the same
//! Message-ID, so a mail system can tell it is the same one.
//!
//! Credentials are minted here, at delivery: a new temporary password and confirmation link
//! for each attempt, only their hashes stored (with the claim, so what goes out works the
//! moment it arrives), the older link superseded. They exist in clear only in the message
//! on its way out. A user confirmed or deactivated before the claim gets none.

use lifecycle_jobs::{SendEmail, sha256_hex};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{JobError, Outcome, Runtime, load_account, load_user};
use crate::config::MailSettings;
use crate::domain::confirmation;
use crate::domain::credentials::{hash_password, new_secret, new_temporary_password};
use crate::domain::user::UserStatus;
use crate::mail::render::{Template, render};
use crate::mail::{MailError, OutgoingEmail, format_instant};
use crate::retrying::with_retries;
use crate::store::emails::{self, EmailRow};
use crate::store::{Store, StoreError, confirmation_links, users};

/// How long a claim holds before another attempt may take the message over: three times
/// what one SMTP command may take, so a live attempt, even a slow one, is never overtaken
/// (lettre's timeout bounds each command; a conversation is a few of them).
pub fn claim_lease_ms(mail: &MailSettings) -> i64 {
    3 * 1000 * mail.timeout_secs.max(1) as i64
}

impl super::Handle for SendEmail {
    fn subject(&self) -> (i64, Option<i64>) {
        (self.account_id, None)
    }

    /// Three steps of its own, not one job transaction: no transaction may stay open while
    /// the SMTP server is talked to.
    fn run(&self, rt: &Runtime<'_>) -> impl Future<Output = Result<Outcome, JobError>> + Send {
        run(rt, self)
    }
}

pub async fn run(ctx: &Runtime<'_>, job: &SendEmail) -> Result<Outcome, JobError> {
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
            Some((password, password_hash, new_secret()))
        }
        _ => None,
    };

    // Step 1: the claim, in one short transaction.
    let claimant = emails::claimant(ctx.job_id, &Uuid::new_v4().simple().to_string());
    let now_ms = ctx.clock.now_ms();
    let stale_before_ms = now_ms - claim_lease_ms(&ctx.settings.mail);
    let mut tx = ctx.store.begin().await?;
    if !emails::claim(
        &mut tx,
        email.id,
        ctx.job_id,
        &claimant,
        now_ms,
        stale_before_ms,
    )
    .await?
    {
        let email = load_email(&mut tx, job).await?;
        tx.commit().await?;
        if let Some(done) = already_settled(&email) {
            // Settled by a concurrent attempt since we looked.
            return Ok(done);
        }
        // Another attempt is sending it now: try again later; by then it is sent, or its
        // claim was released (the send failed) or has run out (that attempt died).
        return Err(JobError::NotYetDue(format!(
            "message {} is being sent by another attempt ({}); trying again later",
            email.id,
            email.claimed_by.as_deref().unwrap_or("unknown")
        )));
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
    tx.commit().await?;

    // Step 2: the send, outside any transaction.
    let message_id = ctx.mailer.message_id(&format!(
        "lifecycle.{}.{}.{}",
        email.account_id,
        email.id,
        email.created_at.timestamp()
    ));
    let rendered = match render(template, &email.language, &variables) {
        Ok(rendered) => rendered,
        Err(error) => {
            release(ctx.store, email.id, &claimant).await;
            return Err(JobError::Precondition(format!(
                "message {}: {error}",
                email.id
            )));
        }
    };
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
        release(ctx.store, email.id, &claimant).await;
        return Err(error.into());
    }

    // Step 3: the mark. Retried through a passing database failure: a mark lost leaves the
    // claim to run out, and then the message goes out again.
    with_retries("mark a sent message", || async {
        let mut tx = ctx.store.begin().await?;
        emails::mark_sent(&mut tx, email.id, &message_id, ctx.clock.now()).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(())
    })
    .await?;
    if ctx.mailer.take_failure_after_sending() {
        return Err(
            MailError::Unavailable("failure injected after sending (test hook)".into()).into(),
        );
    }
    Ok(Outcome::Applied)
}

/// Clears `claimant`'s claim on a message it could not send, in a short transaction of its
/// own, through a passing database failure, so that the retry can send at once. Should it
/// fail for good, the claim runs out and the retry waits for the lease.
async fn release(store: &Store, email_id: i64, claimant: &str) {
    let released = with_retries("release the claim of a failed send", || async {
        let mut tx = store.begin().await?;
        let released = emails::release(&mut tx, email_id, claimant).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(released)
    })
    .await;
    if let Err(error) = released {
        tracing::warn!(email_id, %error, "could not release the claim of a failed send; a retry takes it over after the lease");
    }
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
