//! A new user: the pending row, the permissions copied from a template user, the temporary
//! password they must change at first login.

use chrono::{DateTime, Utc};

use crate::domain::email::normalize_email;
use crate::store::audit::{AuditStamp, record};
use crate::store::{StoreError, Tx, execute, fetch_all, fetch_scalar};

#[derive(Debug, Clone)]
pub struct NewPendingUser<'a> {
    pub account_id: i64,
    pub kind: &'a str,
    pub role_id: i64,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
    pub country: &'a str,
    pub language: &'a str,
    pub simulator_only: bool,
}

/// Inserts a `pending` user who must choose a password at first login.
pub async fn insert_pending(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user: &NewPendingUser<'_>,
) -> Result<i64, StoreError> {
    let id: i64 = fetch_scalar!(
        tx,
        "INSERT INTO users (account_id, kind, role_id, first_name, last_name, email, country,
                            language, status, simulator_only, must_change_password,
                            created_at, updated_at, email_normalized)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, TRUE, $10, $10, $11)
         RETURNING id",
        user.account_id,
        user.kind,
        user.role_id,
        user.first_name,
        user.last_name,
        user.email,
        user.country,
        user.language,
        user.simulator_only,
        stamp.at,
        normalize_email(user.email)
    )?;
    let detail = serde_json::json!({
        "status": "pending",
        "kind": user.kind,
        "role_id": user.role_id,
        "country": user.country,
        "language": user.language,
        "simulator_only": user.simulator_only,
    });
    record(tx, stamp, "user", id, "created", &detail.to_string()).await?;
    Ok(id)
}

/// Gives `to` the per-user permission overrides of `from`. Returns how many.
pub async fn copy_permission_overrides(
    tx: &mut Tx,
    stamp: &AuditStamp,
    from: i64,
    to: i64,
) -> Result<u64, StoreError> {
    let copied = execute!(
        tx,
        "INSERT INTO user_permission_overrides (user_id, permission, granted)
         SELECT $2, permission, granted FROM user_permission_overrides WHERE user_id = $1",
        from,
        to
    )?;
    if copied > 0 {
        let detail = serde_json::json!({ "copied_from": from, "overrides": copied });
        record(
            tx,
            stamp,
            "user",
            to,
            "permissions_copied",
            &detail.to_string(),
        )
        .await?;
    }
    Ok(copied)
}

/// A user's per-user permission overrides, by permission name.
pub async fn permission_overrides(
    tx: &mut Tx,
    user_id: i64,
) -> Result<Vec<(String, bool)>, StoreError> {
    fetch_all!(
        tx,
        (String, bool),
        "SELECT permission, granted FROM user_permission_overrides WHERE user_id = $1
          ORDER BY permission",
        user_id
    )
}

/// Stores the hash of a new temporary password; the user must change it at first login.
pub async fn set_temporary_password(
    tx: &mut Tx,
    user_id: i64,
    password_hash: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "UPDATE users SET password_hash = $2, must_change_password = TRUE, updated_at = $3
          WHERE id = $1",
        user_id,
        password_hash,
        at
    )?;
    Ok(())
}
