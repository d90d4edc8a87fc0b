//! What lets a user in and what runs on their behalf: sessions, API tokens, integrations,
//! subscriptions. Only hashes of secrets are stored.

use lifecycle_jobs::sha256_hex;

use super::audit::{AuditStamp, record_changed};
use super::{StoreError, Tx, execute, fetch_all, fetch_optional};
use crate::domain::credentials::new_secret;

/// Revokes every live session and access token of the user at once. Returns how many.
pub async fn revoke_all_tokens(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
) -> Result<u64, StoreError> {
    let revoked = fetch_all!(
        tx,
        (i64, String),
        "UPDATE access_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL
         RETURNING id, '{\"kind\":\"' || kind || '\"}'",
        stamp.at,
        user_id
    )?;
    record_changed(tx, stamp, "access_token", "revoked", &revoked).await
}

/// Replaces the user's API token with a new random secret nobody is told: the old one
/// stops working, and only its hash was ever stored.
pub async fn rotate_api_token(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
) -> Result<(), StoreError> {
    let new_hash = sha256_hex(&new_secret());
    execute!(
        tx,
        "UPDATE users SET api_token_hash = $1, updated_at = $2 WHERE id = $3",
        new_hash.as_str(),
        stamp.at,
        user_id
    )?;
    super::audit::record(tx, stamp, "user", user_id, "api_token_rotated", "{}").await
}

/// Disables the user's integrations and freezes their email sync. Returns how many.
pub async fn disable_integrations(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
) -> Result<u64, StoreError> {
    let disabled = fetch_all!(
        tx,
        (i64, String),
        "UPDATE integrations SET enabled = FALSE, sync_frozen = TRUE
          WHERE user_id = $1 AND (enabled = TRUE OR sync_frozen = FALSE)
          RETURNING id, '{\"kind\":\"' || kind || '\"}'",
        user_id
    )?;
    record_changed(tx, stamp, "integration", "disabled", &disabled).await
}

/// Cancels the user's active subscriptions. Returns how many.
pub async fn cancel_subscriptions(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
) -> Result<u64, StoreError> {
    let canceled = fetch_all!(
        tx,
        (i64, String),
        "UPDATE subscriptions SET state = 'canceled', canceled_at = $1
          WHERE user_id = $2 AND state = 'active'
          RETURNING id, '{\"plan\":\"' || plan || '\"}'",
        stamp.at,
        user_id
    )?;
    record_changed(tx, stamp, "subscription", "canceled", &canceled).await
}

/// The check other services call on every request: the user a presented token (session,
/// access token or API token) belongs to, if it is live and the user may log in.
pub async fn user_of_token(tx: &mut Tx, token: &str) -> Result<Option<i64>, StoreError> {
    let hash = sha256_hex(token);
    let row: Option<(i64,)> = fetch_optional!(
        tx,
        (i64,),
        "SELECT id FROM users WHERE api_token_hash = $1 AND status = 'active'
         UNION
         SELECT u.id FROM access_tokens t JOIN users u ON u.id = t.user_id
          WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.status = 'active'
         LIMIT 1",
        hash.as_str()
    )?;
    Ok(row.map(|(id,)| id))
}
