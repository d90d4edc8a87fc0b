//! Addresses: the account's blocklist, and the comparison keys (`email_normalized`) that
//! make two spellings of one address the same on both backends.

use crate::domain::email::normalize_email;
use crate::store::audit::{AuditStamp, record};
use crate::store::{Dialect, Store, StoreError, Tx, execute, fetch_all, fetch_scalar};

/// Adds an email to the account's blocklist (stored normalized). Returns whether it was
/// new: an address already blocked in any case (a row the CRM wrote as typed) is left as is.
pub async fn block_email(tx: &mut Tx, stamp: &AuditStamp, email: &str) -> Result<bool, StoreError> {
    let email = normalize_email(email);
    if email_blocked(tx, stamp.account_id, &email).await? {
        return Ok(false);
    }
    let added = execute!(
        tx,
        "INSERT INTO email_blocklist (account_id, email, email_normalized, created_at)
         VALUES ($1, $2, $2, $3)
         ON CONFLICT (account_id, email) DO UPDATE SET created_at = $3, removed_at = NULL
          WHERE email_blocklist.removed_at IS NOT NULL",
        stamp.account_id,
        email.as_str(),
        stamp.at
    )? == 1;
    if added {
        let detail = serde_json::json!({ "email": email });
        record(
            tx,
            stamp,
            "email_blocklist",
            stamp.account_id,
            "added",
            &detail.to_string(),
        )
        .await?;
    }
    Ok(added)
}

/// Takes an email off the account's blocklist, in whatever case each row of it was written.
/// Returns whether it was there.
pub async fn unblock_email(
    tx: &mut Tx,
    stamp: &AuditStamp,
    email: &str,
) -> Result<bool, StoreError> {
    let email = normalize_email(email);
    let removed = execute!(
        tx,
        "UPDATE email_blocklist SET removed_at = $3
          WHERE account_id = $1 AND email_normalized = $2 AND removed_at IS NULL",
        stamp.account_id,
        email.as_str(),
        stamp.at
    )? > 0;
    if removed {
        let detail = serde_json::json!({ "email": email });
        record(
            tx,
            stamp,
            "email_blocklist",
            stamp.account_id,
            "removed",
            &detail.to_string(),
        )
        .await?;
    }
    Ok(removed)
}

/// Whether the email is on the account's blocklist, in any case.
pub async fn email_blocked(tx: &mut Tx, account_id: i64, email: &str) -> Result<bool, StoreError> {
    let count: i64 = fetch_scalar!(
        tx,
        "SELECT COUNT(*) FROM email_blocklist
          WHERE account_id = $1 AND email_normalized = $2 AND removed_at IS NULL",
        account_id,
        normalize_email(email)
    )?;
    Ok(count > 0)
}

/// SQLite only, at start: recomputes in Rust the comparison key of the rows whose address
/// has a non-ASCII character. The migration and the triggers that fill rows the CRM writes
/// directly can only use SQLite's `lower()`, which folds ASCII only; for every other row
/// their key is already the one Rust computes. A row whose Rust key another user of the
/// account already has (a duplicate made before keys existed) keeps its key and is
/// reported: merging the two is an administrator's decision. Returns how many changed.
/// PostgreSQL needs none of this: its `lower()` folds Unicode.
pub async fn renormalize_emails(store: &Store) -> Result<u64, StoreError> {
    if store.dialect() != Dialect::Sqlite {
        return Ok(0);
    }
    let mut tx = store.begin().await?;
    // GLOB with a range outside printable ASCII: the rows with any other character.
    let users: Vec<(i64, i64, String, Option<String>)> = fetch_all!(
        &mut tx,
        (i64, i64, String, Option<String>),
        "SELECT id, account_id, email, email_normalized FROM users
          WHERE email GLOB '*[^ -~]*'"
    )?;
    let mut changed = 0;
    for (id, account_id, email, stored) in users {
        let key = normalize_email(&email);
        if stored.as_deref() == Some(key.as_str()) {
            continue;
        }
        let taken: i64 = fetch_scalar!(
            &mut tx,
            "SELECT COUNT(*) FROM users
              WHERE account_id = $1 AND email_normalized = $2 AND id <> $3",
            account_id,
            key.as_str(),
            id
        )?;
        if taken > 0 {
            tracing::warn!(
                user_id = id,
                account_id,
                "another user of the account has this user's email in another case; left as is"
            );
            continue;
        }
        changed += execute!(
            &mut tx,
            "UPDATE users SET email_normalized = $2 WHERE id = $1",
            id,
            key.as_str()
        )?;
    }
    let blocked: Vec<(i64, String, Option<String>)> = fetch_all!(
        &mut tx,
        (i64, String, Option<String>),
        "SELECT account_id, email, email_normalized FROM email_blocklist
          WHERE email GLOB '*[^ -~]*'"
    )?;
    for (account_id, email, stored) in blocked {
        let key = normalize_email(&email);
        if stored.as_deref() != Some(key.as_str()) {
            changed += execute!(
                &mut tx,
                "UPDATE email_blocklist SET email_normalized = $3
                  WHERE account_id = $1 AND email = $2",
                account_id,
                email.as_str(),
                key.as_str()
            )?;
        }
    }
    tx.commit().await?;
    Ok(changed)
}
