//! Users, as the guards and handlers read them: the lookups and the row lock live here;
//! the changes are split by what they touch: a new user (`onboarding`), the status a
//! user moves through (`status`), sign-ins and activity (`logins`), and addresses (the
//! blocklist and the comparison keys, `email`). Everything is re-exported here, so callers
//! name `users::X` whatever file it is in.

mod email;
mod logins;
mod onboarding;
mod status;

use chrono::{DateTime, Utc};

use super::{Dialect, StoreError, Tx, fetch_optional};
use crate::domain::email::normalize_email;
use crate::domain::user::{Person, UserStatus};

pub use email::{block_email, email_blocked, renormalize_emails, unblock_email};
pub use logins::{count_failed_login, record_activity, record_successful_login};
pub use onboarding::{
    NewPendingUser, copy_permission_overrides, insert_pending, permission_overrides,
    set_temporary_password,
};
pub use status::{confirm, lock, mark_deactivated, reactivate, unlock};

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
