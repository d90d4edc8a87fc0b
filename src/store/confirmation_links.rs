//! Single-use confirmation links. Only the SHA-256 of a link's secret is stored.

use chrono::{DateTime, Utc};

use super::{StoreError, Tx, execute, fetch_optional, fetch_scalar};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LinkRow {
    pub id: i64,
    pub user_id: i64,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub superseded_at: Option<DateTime<Utc>>,
}

/// Records a new link for the user and supersedes the user's older unused ones: only the
/// latest email's link works.
pub async fn replace(
    tx: &mut Tx,
    user_id: i64,
    email_message_id: i64,
    token_hash: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    execute!(
        tx,
        "UPDATE confirmation_links SET superseded_at = $2
          WHERE user_id = $1 AND used_at IS NULL AND superseded_at IS NULL",
        user_id,
        now
    )?;
    fetch_scalar!(
        tx,
        "INSERT INTO confirmation_links (user_id, email_message_id, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        user_id,
        email_message_id,
        token_hash,
        now,
        expires_at
    )
}

/// The link of `user_id` whose secret hashes to `token_hash`.
pub async fn find(
    tx: &mut Tx,
    user_id: i64,
    token_hash: &str,
) -> Result<Option<LinkRow>, StoreError> {
    fetch_optional!(
        tx,
        LinkRow,
        "SELECT id, user_id, expires_at, used_at, superseded_at FROM confirmation_links
          WHERE token_hash = $1 AND user_id = $2",
        token_hash,
        user_id
    )
}

/// Uses the link up. Returns whether this call did (a concurrent confirmation loses).
pub async fn mark_used(tx: &mut Tx, link_id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE confirmation_links SET used_at = $2 WHERE id = $1 AND used_at IS NULL",
        link_id,
        at
    )?;
    Ok(changed == 1)
}
