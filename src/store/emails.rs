//! Recorded email messages (the mail outbox): written in the transaction of the change that
//! calls for them, sent by a SendEmail job, marked sent once.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StoreError, Tx, execute, fetch_all, fetch_optional, fetch_scalar};

#[derive(Clone, Debug)]
pub struct NewEmail<'a> {
    pub account_id: i64,
    pub user_id: Option<i64>,
    pub template: &'a str,
    pub language: &'a str,
    pub to_address: &'a str,
    pub to_name: &'a str,
    /// What the template shows (JSON object); never a secret.
    pub variables: &'a serde_json::Value,
    pub created_by_job: Uuid,
    pub created_at: DateTime<Utc>,
}

pub async fn insert(tx: &mut Tx, email: &NewEmail<'_>) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO email_messages (account_id, user_id, template, language, to_address,
                                     to_name, variables, state, created_by_job, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9) RETURNING id",
        email.account_id,
        email.user_id,
        email.template,
        email.language,
        email.to_address,
        email.to_name,
        email.variables.to_string(),
        email.created_by_job,
        email.created_at
    )
}

/// Records `emails` at once and returns their ids, in order: one statement on PostgreSQL
/// (a sweep's batch records hundreds), one each on SQLite, where a statement is a call.
pub async fn insert_many(tx: &mut Tx, emails: &[NewEmail<'_>]) -> Result<Vec<i64>, StoreError> {
    let pg = match tx {
        Tx::Postgres(pg) if emails.len() > 1 => pg,
        _ => {
            let mut ids = Vec::with_capacity(emails.len());
            for email in emails {
                ids.push(insert(tx, email).await?);
            }
            return Ok(ids);
        }
    };
    let text = |f: fn(&NewEmail<'_>) -> String| emails.iter().map(f).collect::<Vec<String>>();
    // The ids come from the sequence as the rows are produced, in `ord`'s order: sorted,
    // they are the emails' in the order given, whatever order RETURNING lists them in.
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO email_messages (account_id, user_id, template, language, to_address,
                                     to_name, variables, state, created_by_job, created_at)
         SELECT account_id, user_id, template, language, to_address, to_name, variables,
                'pending', created_by_job, created_at
           FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[],
                       $7::text[], $8::uuid[], $9::timestamptz[]) WITH ORDINALITY
             AS new (account_id, user_id, template, language, to_address, to_name, variables,
                     created_by_job, created_at, ord)
          ORDER BY ord
         RETURNING id",
    )
    .bind(
        emails
            .iter()
            .map(|email| email.account_id)
            .collect::<Vec<_>>(),
    )
    .bind(emails.iter().map(|email| email.user_id).collect::<Vec<_>>())
    .bind(text(|email| email.template.to_string()))
    .bind(text(|email| email.language.to_string()))
    .bind(text(|email| email.to_address.to_string()))
    .bind(text(|email| email.to_name.to_string()))
    .bind(text(|email| email.variables.to_string()))
    .bind(
        emails
            .iter()
            .map(|email| email.created_by_job)
            .collect::<Vec<_>>(),
    )
    .bind(
        emails
            .iter()
            .map(|email| email.created_at)
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut **pg)
    .await?;
    ids.sort_unstable();
    Ok(ids)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EmailRow {
    pub id: i64,
    pub account_id: i64,
    pub user_id: Option<i64>,
    pub template: String,
    pub language: String,
    pub to_address: String,
    pub to_name: String,
    pub variables: String,
    /// `pending`, `sent` or `canceled`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub send_attempts: i32,
    pub sent_at: Option<DateTime<Utc>>,
    pub message_id: Option<String>,
    /// The attempt sending a `pending` message right now (see [`claim`]), if any.
    pub claimed_by: Option<String>,
    /// When that attempt claimed it, in ms since the epoch.
    pub claimed_at_ms: Option<i64>,
}

const COLUMNS: &str = "id, account_id, user_id, template, language, to_address, to_name, \
                       variables, state, created_at, send_attempts, sent_at, message_id, \
                       claimed_by, claimed_at_ms";

pub async fn find(tx: &mut Tx, email_id: i64) -> Result<Option<EmailRow>, StoreError> {
    fetch_optional!(
        tx,
        EmailRow,
        sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM email_messages WHERE id = $1"
        )),
        email_id
    )
}

/// A user's messages, oldest first.
pub async fn for_user(tx: &mut Tx, user_id: i64) -> Result<Vec<EmailRow>, StoreError> {
    fetch_all!(
        tx,
        EmailRow,
        sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM email_messages WHERE user_id = $1 ORDER BY id"
        )),
        user_id
    )
}

/// Who claims a message: `<job id>/<attempt nonce>`, so an attempt can tell a claim left
/// by an earlier attempt of its own job.
pub fn claimant(job_id: Uuid, attempt: &str) -> String {
    format!("{job_id}/{attempt}")
}

/// Claims a `pending` message for one delivery attempt of job `job_id` (`claimant`, see
/// [`claimant`]) and counts the attempt: the claim is what stops a second attempt from
/// sending it meanwhile, without holding a transaction open across the SMTP conversation.
/// Taken over: a claim made before `stale_before_ms` (its attempt died mid-send), and one
/// made by an earlier attempt of the same job (the ledger runs a job's attempts one at a
/// time, so that attempt is over: its worker died). Returns `false` when the message is no
/// longer pending, or another job's attempt holds a live claim on it.
pub async fn claim(
    tx: &mut Tx,
    email_id: i64,
    job_id: Uuid,
    claimant: &str,
    now_ms: i64,
    stale_before_ms: i64,
) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE email_messages
            SET send_attempts = send_attempts + 1, claimed_by = $2, claimed_at_ms = $3
          WHERE id = $1 AND state = 'pending'
            AND (claimed_at_ms IS NULL OR claimed_at_ms < $4 OR claimed_by LIKE $5)",
        email_id,
        claimant,
        now_ms,
        stale_before_ms,
        format!("{job_id}/%")
    )?;
    Ok(changed == 1)
}

/// Gives up `claimant`'s claim on a message it could not send, so that a retry may send it
/// at once rather than after the lease. Returns whether the claim was still its own.
pub async fn release(tx: &mut Tx, email_id: i64, claimant: &str) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE email_messages SET claimed_by = NULL, claimed_at_ms = NULL
          WHERE id = $1 AND state = 'pending' AND claimed_by = $2",
        email_id,
        claimant
    )?;
    Ok(changed == 1)
}

/// `pending -> sent`, whoever holds the claim: the server took the message, so it is sent,
/// even when a slow attempt's claim was taken over meanwhile. Returns whether this call
/// made the change.
pub async fn mark_sent(
    tx: &mut Tx,
    email_id: i64,
    message_id: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE email_messages
            SET state = 'sent', sent_at = $2, message_id = $3,
                claimed_by = NULL, claimed_at_ms = NULL
          WHERE id = $1 AND state = 'pending'",
        email_id,
        at,
        message_id
    )?;
    Ok(changed == 1)
}

/// `pending -> canceled`: what the message says is no longer true (the user it welcomes
/// was deactivated before it went out).
pub async fn cancel(tx: &mut Tx, email_id: i64) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE email_messages SET state = 'canceled', claimed_by = NULL, claimed_at_ms = NULL
          WHERE id = $1 AND state = 'pending'",
        email_id
    )?;
    Ok(changed == 1)
}
