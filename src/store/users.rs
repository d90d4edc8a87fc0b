//! Users, as the guards and handlers read them.

use super::{StoreError, Tx, fetch_optional};
use crate::domain::user::{Person, UserStatus};

#[derive(Debug, Clone, sqlx::FromRow)]
struct PersonRow {
    id: i64,
    account_id: i64,
    status: String,
    rank: i32,
    can_manage_users: bool,
}

/// The user with their role's rank and whether they may manage users (by role, or by a
/// per-user override of the `users.manage` permission).
pub async fn find_person(tx: &mut Tx, user_id: i64) -> Result<Option<Person>, StoreError> {
    let row = fetch_optional!(
        tx,
        PersonRow,
        "SELECT u.id, u.account_id, u.status, r.rank,
                COALESCE(o.granted, r.can_manage_users) AS can_manage_users
           FROM users u
           JOIN roles r ON r.id = u.role_id
           LEFT JOIN user_permission_overrides o
                  ON o.user_id = u.id AND o.permission = 'users.manage'
          WHERE u.id = $1",
        user_id
    )?;
    Ok(row.map(|row| Person {
        id: row.id,
        account_id: row.account_id,
        status: UserStatus::parse(&row.status).unwrap_or(UserStatus::Deactivated),
        role_rank: row.rank,
        may_manage_users: row.can_manage_users,
    }))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub account_id: i64,
    pub email: String,
    pub status: String,
}

pub async fn find(tx: &mut Tx, user_id: i64) -> Result<Option<UserRow>, StoreError> {
    fetch_optional!(
        tx,
        UserRow,
        "SELECT id, account_id, email, status FROM users WHERE id = $1",
        user_id
    )
}

/// `-> deactivated`: the user can no longer log in.
pub async fn mark_deactivated(
    tx: &mut Tx,
    stamp: &super::audit::AuditStamp,
    user: &UserRow,
) -> Result<(), StoreError> {
    super::execute!(
        tx,
        "UPDATE users SET status = 'deactivated', deactivated_at = $1, updated_at = $1
          WHERE id = $2",
        stamp.at,
        user.id
    )?;
    let detail = serde_json::json!({ "status": { "from": user.status, "to": "deactivated" } });
    super::audit::record(
        tx,
        stamp,
        "user",
        user.id,
        "deactivated",
        &detail.to_string(),
    )
    .await
}

/// Adds an email to the account's blocklist (stored lower-case). Returns whether it was
/// new.
pub async fn block_email(
    tx: &mut Tx,
    stamp: &super::audit::AuditStamp,
    email: &str,
) -> Result<bool, StoreError> {
    let email = email.to_lowercase();
    let added = super::execute!(
        tx,
        "INSERT INTO email_blocklist (account_id, email, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (account_id, email) DO NOTHING",
        stamp.account_id,
        email.as_str(),
        stamp.at
    )? == 1;
    if added {
        let detail = serde_json::json!({ "email": email });
        super::audit::record(
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

pub async fn email_blocked(tx: &mut Tx, account_id: i64, email: &str) -> Result<bool, StoreError> {
    let count: i64 = super::fetch_scalar!(
        tx,
        "SELECT COUNT(*) FROM email_blocklist WHERE account_id = $1 AND email = $2",
        account_id,
        email.to_lowercase()
    )?;
    Ok(count > 0)
}
