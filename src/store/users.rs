//! Users, as the guards and handlers read them.

use chrono::{DateTime, Utc};

use super::audit::{AuditStamp, record};
use super::{Dialect, StoreError, Tx, execute, fetch_all, fetch_optional};
use crate::domain::email::normalize_email;
use crate::domain::user::{LockReason, Person, UserStatus};

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

/// Locks the rows of the users `user_ids` of `account_id` until the transaction ends, in
/// ascending id order, so that a job deciding on a user's status (or on what a user holds)
/// reads it after every job before it on that user committed, and waits for it otherwise.
/// Every handler locks users first, then licenses, then pools: one order, so two jobs
/// never wait on each other in a cycle. Ids of other accounts, or unknown, lock nothing
/// (the handler then reports them as not found).
///
/// PostgreSQL: `FOR NO KEY UPDATE`, the lock an `UPDATE users` takes anyway; unlike
/// `FOR UPDATE` it leaves alone the key-share locks of rows that merely reference the user
/// (a contact or an opportunity handed to them), which would otherwise wait here, or
/// deadlock with a job handing records the other way. SQLite: nothing to do, the job's
/// `BEGIN IMMEDIATE` transaction already holds the database's only write lock.
pub async fn lock_in_account(
    tx: &mut Tx,
    account_id: i64,
    user_ids: &[i64],
) -> Result<(), StoreError> {
    if tx.dialect() == Dialect::Sqlite {
        return Ok(());
    }
    let mut ids = user_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        fetch_optional!(
            tx,
            (i64,),
            "SELECT id FROM users WHERE id = $1 AND account_id = $2 FOR NO KEY UPDATE",
            id,
            account_id
        )?;
    }
    Ok(())
}

/// A user's row, as handlers and emails need it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub account_id: i64,
    /// `employee` or `customer`.
    pub kind: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub country: String,
    pub language: String,
    pub status: String,
    pub lock_reason: Option<String>,
    pub failed_logins: i32,
    pub last_login_at: Option<DateTime<Utc>>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub must_change_password: bool,
    pub simulator_only: bool,
}

impl UserRow {
    pub fn status(&self) -> UserStatus {
        UserStatus::parse(&self.status).unwrap_or(UserStatus::Deactivated)
    }

    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

const USER_COLUMNS: &str = "id, account_id, kind, first_name, last_name, email, country, \
     language, status, lock_reason, failed_logins, last_login_at, last_activity_at, \
     confirmed_at, must_change_password, simulator_only";

pub async fn find(tx: &mut Tx, user_id: i64) -> Result<Option<UserRow>, StoreError> {
    fetch_optional!(
        tx,
        UserRow,
        sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")),
        user_id
    )
}

/// The user of the account with this email, whatever its case (compared normalized, in
/// full Unicode, on both backends).
pub async fn find_by_email(
    tx: &mut Tx,
    account_id: i64,
    email: &str,
) -> Result<Option<UserRow>, StoreError> {
    fetch_optional!(
        tx,
        UserRow,
        sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE account_id = $1 AND email_normalized = $2"
        )),
        account_id,
        normalize_email(email)
    )
}

/// The user `user_id` of `account_id`, or not found (another tenant's user does not exist
/// for this account).
pub async fn find_in_account(
    tx: &mut Tx,
    account_id: i64,
    user_id: i64,
) -> Result<Option<UserRow>, StoreError> {
    Ok(find(tx, user_id)
        .await?
        .filter(|user| user.account_id == account_id))
}

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
    let id: i64 = super::fetch_scalar!(
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

/// `pending -> active`: confirmed now; the idle clock starts now, and so does the count of
/// failed sign-ins (failures while pending were someone guessing at a password the user had
/// not yet chosen; one typo after confirming must not lock). Returns whether it changed.
pub async fn confirm(tx: &mut Tx, stamp: &AuditStamp, user_id: i64) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE users SET status = 'active', confirmed_at = $2, last_activity_at = $2,
                          failed_logins = 0, updated_at = $2
          WHERE id = $1 AND status = 'pending'",
        user_id,
        stamp.at
    )? == 1;
    if changed {
        audit_status(tx, stamp, user_id, "pending", "active", "confirmed", None).await?;
    }
    Ok(changed)
}

/// `active -> locked` for `reason`. Returns whether this call locked the user.
pub async fn lock(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
    reason: LockReason,
) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE users SET status = 'locked', lock_reason = $2, updated_at = $3
          WHERE id = $1 AND status = 'active'",
        user_id,
        reason.as_str(),
        stamp.at
    )? == 1;
    if changed {
        let extra = serde_json::json!({ "lock_reason": reason.as_str() });
        audit_status(
            tx,
            stamp,
            user_id,
            "active",
            "locked",
            "locked",
            Some(extra),
        )
        .await?;
    }
    Ok(changed)
}

/// `locked -> active`, the failure counter reset; with `fresh_activity_clock` the idle
/// clock restarts now. Returns whether this call unlocked the user.
pub async fn unlock(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user: &UserRow,
    fresh_activity_clock: bool,
) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE users SET status = 'active', lock_reason = NULL, failed_logins = 0,
                          last_activity_at = CASE WHEN $3 THEN $2 ELSE last_activity_at END,
                          updated_at = $2
          WHERE id = $1 AND status = 'locked'",
        user.id,
        stamp.at,
        fresh_activity_clock
    )? == 1;
    if changed {
        let extra = serde_json::json!({ "lock_reason": user.lock_reason });
        audit_status(
            tx,
            stamp,
            user.id,
            "locked",
            "active",
            "unlocked",
            Some(extra),
        )
        .await?;
    }
    Ok(changed)
}

/// `deactivated -> active`: able to sign in again, failure counter reset, idle clock
/// restarted. Nothing else is restored. Returns whether this call reactivated the user.
pub async fn reactivate(tx: &mut Tx, stamp: &AuditStamp, user_id: i64) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE users SET status = 'active', deactivated_at = NULL, lock_reason = NULL,
                          failed_logins = 0, last_activity_at = $2, updated_at = $2
          WHERE id = $1 AND status = 'deactivated'",
        user_id,
        stamp.at
    )? == 1;
    if changed {
        audit_status(
            tx,
            stamp,
            user_id,
            "deactivated",
            "active",
            "reactivated",
            None,
        )
        .await?;
    }
    Ok(changed)
}

/// One more consecutive failed sign-in; returns the new count. Atomic, so concurrent
/// reports all count.
pub async fn count_failed_login(tx: &mut Tx, user_id: i64) -> Result<i32, StoreError> {
    super::fetch_scalar!(
        tx,
        "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
        user_id
    )
}

/// A successful sign-in: the failure count resets; last login and activity move forward.
pub async fn record_successful_login(
    tx: &mut Tx,
    user_id: i64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "UPDATE users SET failed_logins = 0,
                last_login_at = CASE WHEN last_login_at IS NULL OR last_login_at < $2
                                     THEN $2 ELSE last_login_at END,
                last_activity_at = CASE WHEN last_activity_at IS NULL OR last_activity_at < $2
                                        THEN $2 ELSE last_activity_at END
          WHERE id = $1",
        user_id,
        at
    )?;
    Ok(())
}

/// Moves the last-activity time forward to `at` (never back). Returns whether it moved.
pub async fn record_activity(
    tx: &mut Tx,
    user_id: i64,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let moved = execute!(
        tx,
        "UPDATE users SET last_activity_at = $2
          WHERE id = $1 AND (last_activity_at IS NULL OR last_activity_at < $2)",
        user_id,
        at
    )?;
    Ok(moved == 1)
}

async fn audit_status(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
    from: &str,
    to: &str,
    action: &str,
    extra: Option<serde_json::Value>,
) -> Result<(), StoreError> {
    let mut detail = serde_json::json!({ "status": { "from": from, "to": to } });
    if let (Some(serde_json::Value::Object(extra)), Some(detail)) = (extra, detail.as_object_mut())
    {
        detail.extend(extra);
    }
    record(tx, stamp, "user", user_id, action, &detail.to_string()).await
}

/// `-> deactivated`: the user can no longer log in.
pub async fn mark_deactivated(
    tx: &mut Tx,
    stamp: &AuditStamp,
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
    record(
        tx,
        stamp,
        "user",
        user.id,
        "deactivated",
        &detail.to_string(),
    )
    .await
}

/// Adds an email to the account's blocklist (stored normalized). Returns whether it was
/// new: an address already blocked in any case (a row the CRM wrote as typed) is left as is.
pub async fn block_email(tx: &mut Tx, stamp: &AuditStamp, email: &str) -> Result<bool, StoreError> {
    let email = normalize_email(email);
    if email_blocked(tx, stamp.account_id, &email).await? {
        return Ok(false);
    }
    let added = super::execute!(
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
    let count: i64 = super::fetch_scalar!(
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
pub async fn renormalize_emails(store: &super::Store) -> Result<u64, StoreError> {
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
        let taken: i64 = super::fetch_scalar!(
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
