//! The sweeps' reads of active users: the walk over every one in id order (their facts
//! alone), each account's people (manager roles, overrides, exempt list), a batch's users
//! read again locked, and an account's users or managers a page at a time (the dry-run).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::store::users::UserRow;
use crate::store::{Dialect, StoreError, Tx, fetch_all, json_ids};

/// An active user with what the sweeps judge them by.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SweepUser {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub role_id: i64,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: Option<DateTime<Utc>>,
    pub is_service_account: bool,
    /// On the account's exempt list.
    pub on_exempt_list: bool,
    /// May manage users: by role, or by a per-user override of `users.manage`.
    pub may_manage_users: bool,
}

impl SweepUser {
    /// What the sweeps judge this user by.
    pub fn facts(&self) -> UserFacts {
        UserFacts {
            id: self.user.id,
            account_id: self.user.account_id,
            role_id: self.role_id,
            created_at: self.created_at,
            confirmed_at: self.user.confirmed_at,
            last_activity_at: self.user.last_activity_at,
            last_login_at: self.user.last_login_at,
            password_changed_at: self.password_changed_at,
            must_change_password: self.user.must_change_password,
            is_service_account: self.is_service_account,
            on_exempt_list: self.on_exempt_list,
            may_manage_users: self.may_manage_users,
        }
    }
}

/// What the sweeps judge an active user by, and no more: the walk over every user reads
/// these columns alone, with no join (the account's roles, overrides and exempt list are
/// read once per account and fill in the last two fields).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserFacts {
    pub id: i64,
    pub account_id: i64,
    pub role_id: i64,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub password_changed_at: Option<DateTime<Utc>>,
    pub must_change_password: bool,
    pub is_service_account: bool,
    #[sqlx(default)]
    pub on_exempt_list: bool,
    #[sqlx(default)]
    pub may_manage_users: bool,
}

/// The next `limit` active users after user `after_id`, in id order (the order their rows
/// were written in, so a walk reads the table front to back): of every account, or of
/// account `only` when it is not 0.
pub async fn active_user_facts_after(
    tx: &mut Tx,
    after_id: i64,
    only: i64,
    limit: i64,
) -> Result<Vec<UserFacts>, StoreError> {
    const COLUMNS: &str = "SELECT id, account_id, role_id, created_at, confirmed_at,
                                  last_activity_at, last_login_at, password_changed_at,
                                  must_change_password, is_service_account
                             FROM users";
    if only == 0 {
        fetch_all!(
            tx,
            UserFacts,
            sqlx::AssertSqlSafe(format!(
                "{COLUMNS} WHERE status = 'active' AND id > $1 ORDER BY id LIMIT $2"
            )),
            after_id,
            limit
        )
    } else {
        fetch_all!(
            tx,
            UserFacts,
            sqlx::AssertSqlSafe(format!(
                "{COLUMNS} WHERE account_id = $3 AND status = 'active' AND id > $1
                 ORDER BY id LIMIT $2"
            )),
            after_id,
            limit,
            only
        )
    }
}

/// What the sweeps need of an account's people besides their rows: the roles that may
/// manage users, the per-user overrides of `users.manage`, the exempt list.
#[derive(Debug, Clone, Default)]
pub struct AccountPeople {
    pub manager_roles: Vec<i64>,
    pub manage_overrides: HashMap<i64, bool>,
    pub exempt_users: HashSet<i64>,
}

/// [`AccountPeople`] of each of `account_ids`, by account.
pub async fn people_of(
    tx: &mut Tx,
    account_ids: &[i64],
) -> Result<HashMap<i64, AccountPeople>, StoreError> {
    let ids = json_ids(account_ids);
    let in_ids = tx.dialect().ids_in(1);
    let roles: Vec<(i64, i64)> = fetch_all!(
        tx,
        (i64, i64),
        sqlx::AssertSqlSafe(format!(
            "SELECT account_id, id FROM roles WHERE can_manage_users AND account_id IN {in_ids}"
        )),
        ids.as_str()
    )?;
    let overrides: Vec<(i64, i64, bool)> = fetch_all!(
        tx,
        (i64, i64, bool),
        sqlx::AssertSqlSafe(format!(
            "SELECT u.account_id, o.user_id, o.granted
               FROM user_permission_overrides o JOIN users u ON u.id = o.user_id
              WHERE o.permission = 'users.manage' AND u.account_id IN {in_ids}"
        )),
        ids.as_str()
    )?;
    let exempt: Vec<(i64, i64)> = fetch_all!(
        tx,
        (i64, i64),
        sqlx::AssertSqlSafe(format!(
            "SELECT account_id, user_id FROM account_sweep_exemptions
              WHERE account_id IN {in_ids}"
        )),
        ids.as_str()
    )?;
    let mut people: HashMap<i64, AccountPeople> = account_ids
        .iter()
        .map(|id| (*id, AccountPeople::default()))
        .collect();
    for (account_id, role_id) in roles {
        people
            .entry(account_id)
            .or_default()
            .manager_roles
            .push(role_id);
    }
    for (account_id, user_id, granted) in overrides {
        people
            .entry(account_id)
            .or_default()
            .manage_overrides
            .insert(user_id, granted);
    }
    for (account_id, user_id) in exempt {
        people
            .entry(account_id)
            .or_default()
            .exempt_users
            .insert(user_id);
    }
    Ok(people)
}

impl AccountPeople {
    /// Fills in what the walk's row of `user` lacks: the exempt list, may-manage-users.
    pub fn complete(&self, user: &mut UserFacts) {
        user.on_exempt_list = self.exempt_users.contains(&user.id);
        user.may_manage_users = match self.manage_overrides.get(&user.id) {
            Some(granted) => *granted,
            None => self.manager_roles.contains(&user.role_id),
        };
    }
}

/// The columns of a [`SweepUser`], then `FROM` and the joins, for every statement that
/// reads one.
macro_rules! sweep_users_from {
    () => {
        "SELECT u.id, u.account_id, u.kind, u.first_name, u.last_name, u.email, u.country,
                u.language, u.status, u.lock_reason, u.failed_logins, u.last_login_at,
                u.last_activity_at, u.confirmed_at, u.must_change_password,
                u.simulator_only, u.role_id, u.created_at, u.password_changed_at,
                u.is_service_account,
                EXISTS (SELECT 1 FROM account_sweep_exemptions e
                         WHERE e.account_id = u.account_id AND e.user_id = u.id)
                    AS on_exempt_list,
                COALESCE(o.granted, r.can_manage_users) AS may_manage_users
           FROM users u
           JOIN roles r ON r.id = u.role_id
           LEFT JOIN user_permission_overrides o
                  ON o.user_id = u.id AND o.permission = 'users.manage' "
    };
}

macro_rules! active_users_sql {
    ($filter:literal) => {
        concat!(
            sweep_users_from!(),
            "WHERE u.account_id = $1 AND u.status = 'active' ",
            $filter,
            " ORDER BY u.id LIMIT $3"
        )
    };
}

/// Those of `ids` still active, read again and locked (PostgreSQL) until the transaction
/// ends: what a batch decides on, so a sign of use committed meanwhile is read before the
/// user is judged, not after. Without the joins: `on_exempt_list` and `may_manage_users`
/// come back false, for the caller to fill in from the account's [`AccountPeople`].
pub async fn active_users_locked(tx: &mut Tx, ids: &[i64]) -> Result<Vec<SweepUser>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    const COLUMNS: &str = "SELECT id, account_id, kind, first_name, last_name, email, country,
                                  language, status, lock_reason, failed_logins, last_login_at,
                                  last_activity_at, confirmed_at, must_change_password,
                                  simulator_only, role_id, created_at, password_changed_at,
                                  is_service_account, FALSE AS on_exempt_list,
                                  FALSE AS may_manage_users
                             FROM users";
    Ok(match tx {
        Tx::Postgres(tx) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{COLUMNS} WHERE status = 'active' AND id = ANY($1) ORDER BY id
                 FOR NO KEY UPDATE"
            )))
            .bind(ids)
            .fetch_all(&mut **tx)
            .await?
        }
        Tx::Sqlite(tx) => {
            let in_ids = Dialect::Sqlite.ids_in(1);
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{COLUMNS} WHERE status = 'active' AND id IN {in_ids} ORDER BY id"
            )))
            .bind(json_ids(ids))
            .fetch_all(&mut **tx)
            .await?
        }
    })
}

/// The next page of an account's active users after `after_id`, `limit` of them.
pub async fn active_users_after(
    tx: &mut Tx,
    account_id: i64,
    after_id: i64,
    limit: i64,
) -> Result<Vec<SweepUser>, StoreError> {
    fetch_all!(
        tx,
        SweepUser,
        active_users_sql!("AND u.id > $2"),
        account_id,
        after_id,
        limit
    )
}

/// A page of the account's active users who may manage users, in id order after
/// `after_id`, at most `limit`, for the last-manager exemption.
pub async fn active_user_managers(
    tx: &mut Tx,
    account_id: i64,
    after_id: i64,
    limit: i64,
) -> Result<Vec<SweepUser>, StoreError> {
    fetch_all!(
        tx,
        SweepUser,
        active_users_sql!("AND u.id > $2 AND COALESCE(o.granted, r.can_manage_users)"),
        account_id,
        after_id,
        limit
    )
}
