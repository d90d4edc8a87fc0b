//! The nightly sweeps' statements: accounts and their active users in keyset pages (a
//! bounded number of rows per statement, never all users at once), the set-based changes
//! of a batch (`UPDATE .. WHERE id IN (..) AND <still due> RETURNING`, so a rerun changes
//! nothing twice), the staged-warning markers and the breaker's holds.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::accounts::AccountRow;
use super::audit::{self, BatchStamp, Changed};
use super::users::UserRow;
use super::{Store, StoreError, Tx, execute, fetch_all, fetch_optional, fetch_scalar};

/// An account with its sweep policies (`None`: the configured default).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SweepAccount {
    #[sqlx(flatten)]
    pub account: AccountRow,
    pub idle_days: Option<i32>,
    pub password_max_age_days: Option<i32>,
}

/// Accounts after `after_id` in id order, `limit` of them; `only` > 0 keeps that one.
pub async fn accounts_after(
    tx: &mut Tx,
    after_id: i64,
    only: i64,
    limit: i64,
) -> Result<Vec<SweepAccount>, StoreError> {
    fetch_all!(
        tx,
        SweepAccount,
        "SELECT id, name, time_zone, billing_anchor_day, contacts_policy, failed_login_limit,
                idle_days, password_max_age_days
           FROM accounts WHERE id > $1 AND ($2 = 0 OR id = $2) ORDER BY id LIMIT $3",
        after_id,
        only,
        limit
    )
}

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
    // The ids as one JSON array on both backends: one statement whatever their number.
    let ids = serde_json::to_string(account_ids).unwrap_or_else(|_| "[]".into());
    let in_ids = match tx.dialect() {
        super::Dialect::Postgres => {
            "(SELECT value::int8 FROM jsonb_array_elements_text($1::jsonb))"
        }
        super::Dialect::Sqlite => "(SELECT value FROM json_each($1))",
    };
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
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{COLUMNS} WHERE status = 'active' AND id IN (SELECT value FROM json_each($1))
                 ORDER BY id"
            )))
            .bind(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()))
            .fetch_all(&mut **tx)
            .await?
        }
    })
}

/// The accounts of `ids` with their sweep policies, in id order.
pub async fn accounts_of(tx: &mut Tx, ids: &[i64]) -> Result<Vec<SweepAccount>, StoreError> {
    const COLUMNS: &str = "SELECT id, name, time_zone, billing_anchor_day, contacts_policy,
                                  failed_login_limit, idle_days, password_max_age_days
                             FROM accounts";
    Ok(match tx {
        Tx::Postgres(tx) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{COLUMNS} WHERE id = ANY($1) ORDER BY id"
            )))
            .bind(ids)
            .fetch_all(&mut **tx)
            .await?
        }
        Tx::Sqlite(tx) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{COLUMNS} WHERE id IN (SELECT value FROM json_each($1)) ORDER BY id"
            )))
            .bind(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()))
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

pub async fn active_user_count(tx: &mut Tx, account_id: i64) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "SELECT COUNT(*) FROM users WHERE account_id = $1 AND status = 'active'",
        account_id
    )
}

/// A change a batch makes to one user: who, in which account, and its audit detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueUser {
    pub account_id: i64,
    pub user_id: i64,
    pub detail: String,
}

/// Runs `set` on those of `due` still `active` and matching `still_due`, each in its own
/// account (`$1` the instant), audits each changed row as `action`, and returns the
/// changed users (a rerun changes and audits none twice).
async fn change_due(
    tx: &mut Tx,
    stamp: &BatchStamp,
    set: &'static str,
    still_due: &'static str,
    action: &str,
    due: &[DueUser],
) -> Result<Vec<DueUser>, StoreError> {
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let changed: Vec<(i64, i64)> = match tx {
        // One statement for every account of the batch, each id paired with its account.
        Tx::Postgres(tx) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE users u SET {set}, updated_at = $1
                   FROM UNNEST($2::int8[], $3::int8[]) AS due (account_id, id)
                  WHERE u.id = due.id AND u.account_id = due.account_id
                    AND u.status = 'active' {still_due}
                RETURNING u.account_id, u.id"
            )))
            .bind(stamp.at)
            .bind(due.iter().map(|user| user.account_id).collect::<Vec<_>>())
            .bind(due.iter().map(|user| user.user_id).collect::<Vec<_>>())
            .fetch_all(&mut **tx)
            .await?
        }
        // In process: a statement per user costs no round trip.
        Tx::Sqlite(tx) => {
            let sql = format!(
                "UPDATE users SET {set}, updated_at = $1
                  WHERE account_id = $2 AND id = $3 AND status = 'active' {still_due}
              RETURNING account_id, id"
            );
            let mut changed = Vec::new();
            for user in due {
                let row: Option<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(stamp.at)
                    .bind(user.account_id)
                    .bind(user.user_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                changed.extend(row);
            }
            changed
        }
    };
    let changed: std::collections::HashSet<(i64, i64)> = changed.into_iter().collect();
    let changed: Vec<DueUser> = due
        .iter()
        .filter(|user| changed.contains(&(user.account_id, user.user_id)))
        .cloned()
        .collect();
    let audited: Vec<Changed> = changed
        .iter()
        .map(|user| Changed {
            account_id: user.account_id,
            entity_id: user.user_id,
            detail: user.detail.clone(),
        })
        .collect();
    audit::record_changed_across(tx, stamp, "user", action, &audited).await?;
    Ok(changed)
}

/// Locks (`idle`) those of `due` still active, auditing each with its detail; returns the
/// users this call locked.
pub async fn lock_idle(
    tx: &mut Tx,
    stamp: &BatchStamp,
    due: &[DueUser],
) -> Result<Vec<DueUser>, StoreError> {
    change_due(
        tx,
        stamp,
        "status = 'locked', lock_reason = 'idle'",
        "",
        "locked",
        due,
    )
    .await
}

/// Sets must-change-password on those of `due` still active without it, auditing each;
/// returns the users this call changed.
pub async fn require_password_change(
    tx: &mut Tx,
    stamp: &BatchStamp,
    due: &[DueUser],
) -> Result<Vec<DueUser>, StoreError> {
    change_due(
        tx,
        stamp,
        "must_change_password = TRUE",
        "AND must_change_password = FALSE",
        "password_expired",
        due,
    )
    .await
}

/// Records that warning `stage_days` of `kind` for `deadline` goes to `user_id`; `false`
/// when it was recorded before (then it must not be sent again).
pub async fn mark_warning(
    tx: &mut Tx,
    user_id: i64,
    kind: &str,
    deadline: DateTime<Utc>,
    stage_days: u32,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Inserted {
        #[allow(dead_code)]
        user_id: i64,
    }
    let inserted = fetch_optional!(
        tx,
        Inserted,
        "INSERT INTO user_warning_markers (user_id, kind, deadline, stage_days, sent_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING user_id",
        user_id,
        kind,
        deadline,
        i64::from(stage_days),
        at
    )?;
    Ok(inserted.is_some())
}

/// A warning due to a user: stage `stage_days` before `deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarningDue {
    pub user_id: i64,
    pub deadline: DateTime<Utc>,
    pub stage_days: u32,
}

/// [`mark_warning`] for a batch's warnings of `kind` at once (one statement on
/// PostgreSQL); returns those recorded now, which are the ones to send.
pub async fn mark_warnings(
    tx: &mut Tx,
    kind: &str,
    due: &[WarningDue],
    at: DateTime<Utc>,
) -> Result<Vec<WarningDue>, StoreError> {
    let pg = match tx {
        Tx::Postgres(pg) if due.len() > 1 => pg,
        _ => {
            let mut marked = Vec::with_capacity(due.len());
            for warning in due {
                if mark_warning(
                    tx,
                    warning.user_id,
                    kind,
                    warning.deadline,
                    warning.stage_days,
                    at,
                )
                .await?
                {
                    marked.push(*warning);
                }
            }
            return Ok(marked);
        }
    };
    let inserted: Vec<(i64, DateTime<Utc>, i64)> = sqlx::query_as(
        "INSERT INTO user_warning_markers (user_id, kind, deadline, stage_days, sent_at)
         SELECT user_id, $2, deadline, stage_days, $3
           FROM UNNEST($1::int8[], $4::timestamptz[], $5::int8[])
             AS due (user_id, deadline, stage_days)
         ON CONFLICT DO NOTHING RETURNING user_id, deadline, stage_days::int8",
    )
    .bind(
        due.iter()
            .map(|warning| warning.user_id)
            .collect::<Vec<_>>(),
    )
    .bind(kind)
    .bind(at)
    .bind(
        due.iter()
            .map(|warning| warning.deadline)
            .collect::<Vec<_>>(),
    )
    .bind(
        due.iter()
            .map(|warning| i64::from(warning.stage_days))
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut **pg)
    .await?;
    Ok(due
        .iter()
        .filter(|warning| {
            inserted.iter().any(|(user, deadline, stage)| {
                *user == warning.user_id
                    && *deadline == warning.deadline
                    && *stage == i64::from(warning.stage_days)
            })
        })
        .copied()
        .collect())
}

/// An account held by the breaker, waiting for confirmation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Hold {
    pub account_id: i64,
    pub sweep: String,
    pub held_at: DateTime<Utc>,
    pub share: f64,
    pub would_lock: i64,
    pub active_users: i64,
}

/// The open (unconfirmed) hold of `sweep` on the account, if any.
pub async fn open_hold(
    tx: &mut Tx,
    account_id: i64,
    sweep: &str,
) -> Result<Option<Hold>, StoreError> {
    fetch_optional!(
        tx,
        Hold,
        "SELECT account_id, sweep, held_at, share, would_lock, active_users FROM sweep_holds
          WHERE account_id = $1 AND sweep = $2 AND confirmed_at IS NULL",
        account_id,
        sweep
    )
}

/// Those of `account_ids` with an open (unconfirmed) hold of `sweep`.
pub async fn held_accounts(
    tx: &mut Tx,
    sweep: &str,
    account_ids: &[i64],
) -> Result<Vec<i64>, StoreError> {
    Ok(match tx {
        Tx::Postgres(tx) => {
            sqlx::query_scalar(
                "SELECT account_id FROM sweep_holds
                  WHERE sweep = $1 AND confirmed_at IS NULL AND account_id = ANY($2)",
            )
            .bind(sweep)
            .bind(account_ids)
            .fetch_all(&mut **tx)
            .await?
        }
        Tx::Sqlite(tx) => {
            sqlx::query_scalar(
                "SELECT account_id FROM sweep_holds
                  WHERE sweep = $1 AND confirmed_at IS NULL
                    AND account_id IN (SELECT value FROM json_each($2))",
            )
            .bind(sweep)
            .bind(serde_json::to_string(account_ids).unwrap_or_else(|_| "[]".into()))
            .fetch_all(&mut **tx)
            .await?
        }
    })
}

/// Holds the account; `false` when it was held already (one open hold per account).
pub async fn hold(tx: &mut Tx, hold: &Hold) -> Result<bool, StoreError> {
    let inserted = execute!(
        tx,
        "INSERT INTO sweep_holds (account_id, sweep, held_at, share, would_lock, active_users)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (account_id, sweep) WHERE confirmed_at IS NULL DO NOTHING",
        hold.account_id,
        hold.sweep.as_str(),
        hold.held_at,
        hold.share,
        hold.would_lock,
        hold.active_users
    )?;
    Ok(inserted == 1)
}

/// Marks the account's open hold confirmed by `by`; returns whether there was one.
pub async fn confirm_hold(
    tx: &mut Tx,
    account_id: i64,
    sweep: &str,
    at: DateTime<Utc>,
    by: &str,
) -> Result<bool, StoreError> {
    Ok(execute!(
        tx,
        "UPDATE sweep_holds SET confirmed_at = $3, confirmed_by = $4
          WHERE account_id = $1 AND sweep = $2 AND confirmed_at IS NULL",
        account_id,
        sweep,
        at,
        by
    )? > 0)
}

/// Every open hold of `sweep`, oldest first: the accounts waiting for an administrator.
pub async fn open_holds(store: &Store, sweep: &str) -> Result<Vec<Hold>, StoreError> {
    let mut tx = store.begin_read().await?;
    let holds = fetch_all!(
        &mut tx,
        Hold,
        "SELECT account_id, sweep, held_at, share, would_lock, active_users FROM sweep_holds
          WHERE sweep = $1 AND confirmed_at IS NULL ORDER BY held_at, account_id",
        sweep
    )?;
    tx.commit().await?;
    Ok(holds)
}
