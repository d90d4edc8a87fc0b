//! The nightly sweeps' statements: accounts and their active users in keyset pages (a
//! bounded number of rows per statement, never all users at once), the set-based changes
//! of a batch (`UPDATE .. WHERE id IN (..) AND <still due> RETURNING`, so a rerun changes
//! nothing twice), the staged-warning markers and the breaker's holds.

use chrono::{DateTime, Utc};

use super::accounts::AccountRow;
use super::audit::{self, AuditStamp};
use super::users::UserRow;
use super::{Dialect, Store, StoreError, Tx, execute, fetch_all, fetch_optional, fetch_scalar};

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
    pub created_at: DateTime<Utc>,
    pub password_changed_at: Option<DateTime<Utc>>,
    pub is_service_account: bool,
    /// On the account's exempt list.
    pub on_exempt_list: bool,
    /// May manage users: by role, or by a per-user override of `users.manage`.
    pub may_manage_users: bool,
}

macro_rules! active_users_sql {
    ($filter:literal, $suffix:literal) => {
        concat!(
            "SELECT u.id, u.account_id, u.kind, u.first_name, u.last_name, u.email, u.country,
                    u.language, u.status, u.lock_reason, u.failed_logins, u.last_login_at,
                    u.last_activity_at, u.confirmed_at, u.must_change_password,
                    u.simulator_only, u.created_at, u.password_changed_at,
                    u.is_service_account,
                    EXISTS (SELECT 1 FROM account_sweep_exemptions e
                             WHERE e.account_id = u.account_id AND e.user_id = u.id)
                        AS on_exempt_list,
                    COALESCE(o.granted, r.can_manage_users) AS may_manage_users
               FROM users u
               JOIN roles r ON r.id = u.role_id
               LEFT JOIN user_permission_overrides o
                      ON o.user_id = u.id AND o.permission = 'users.manage'
              WHERE u.account_id = $1 AND u.status = 'active' ",
            $filter,
            " ORDER BY u.id LIMIT $3",
            $suffix
        )
    };
}

/// The next page of an account's active users after `after_id`, `limit` of them. With
/// `for_update` (PostgreSQL) their rows are locked until the transaction ends, so a sign
/// of use committed meanwhile is read before the user is judged, not after.
pub async fn active_users_after(
    tx: &mut Tx,
    account_id: i64,
    after_id: i64,
    limit: i64,
    for_update: bool,
) -> Result<Vec<SweepUser>, StoreError> {
    if for_update && tx.dialect() == Dialect::Postgres {
        fetch_all!(
            tx,
            SweepUser,
            active_users_sql!("AND u.id > $2", " FOR NO KEY UPDATE OF u"),
            account_id,
            after_id,
            limit
        )
    } else {
        fetch_all!(
            tx,
            SweepUser,
            active_users_sql!("AND u.id > $2", ""),
            account_id,
            after_id,
            limit
        )
    }
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
        active_users_sql!(
            "AND u.id > $2 AND COALESCE(o.granted, r.can_manage_users)",
            ""
        ),
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

/// Runs `sql` with `$1` the account, `$2` the instant and `$3` the ids (an array on
/// PostgreSQL, a JSON array on SQLite), returning the ids it changed.
async fn update_ids(
    tx: &mut Tx,
    postgres: &'static str,
    sqlite: &'static str,
    account_id: i64,
    at: DateTime<Utc>,
    ids: &[i64],
) -> Result<Vec<i64>, StoreError> {
    Ok(match tx {
        Tx::Postgres(tx) => {
            sqlx::query_scalar(postgres)
                .bind(account_id)
                .bind(at)
                .bind(ids)
                .fetch_all(&mut **tx)
                .await?
        }
        Tx::Sqlite(tx) => {
            let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
            sqlx::query_scalar(sqlite)
                .bind(account_id)
                .bind(at)
                .bind(ids)
                .fetch_all(&mut **tx)
                .await?
        }
    })
}

/// Locks (`idle`) those of `ids` still active in the account, auditing each with its
/// `(id, detail)`; returns the ids this call locked (a rerun locks and audits none twice).
pub async fn lock_idle(
    tx: &mut Tx,
    stamp: &AuditStamp,
    users: &[(i64, String)],
) -> Result<Vec<i64>, StoreError> {
    let ids: Vec<i64> = users.iter().map(|(id, _)| *id).collect();
    let locked = update_ids(
        tx,
        "UPDATE users SET status = 'locked', lock_reason = 'idle', updated_at = $2
          WHERE account_id = $1 AND status = 'active' AND id = ANY($3) RETURNING id",
        "UPDATE users SET status = 'locked', lock_reason = 'idle', updated_at = $2
          WHERE account_id = $1 AND status = 'active'
            AND id IN (SELECT value FROM json_each($3)) RETURNING id",
        stamp.account_id,
        stamp.at,
        &ids,
    )
    .await?;
    audit_changed(tx, stamp, "locked", users, &locked).await?;
    Ok(locked)
}

/// Sets must-change-password on those of `ids` still active without it, auditing each;
/// returns the ids this call changed.
pub async fn require_password_change(
    tx: &mut Tx,
    stamp: &AuditStamp,
    users: &[(i64, String)],
) -> Result<Vec<i64>, StoreError> {
    let ids: Vec<i64> = users.iter().map(|(id, _)| *id).collect();
    let changed = update_ids(
        tx,
        "UPDATE users SET must_change_password = TRUE, updated_at = $2
          WHERE account_id = $1 AND status = 'active' AND must_change_password = FALSE
            AND id = ANY($3) RETURNING id",
        "UPDATE users SET must_change_password = TRUE, updated_at = $2
          WHERE account_id = $1 AND status = 'active' AND must_change_password = FALSE
            AND id IN (SELECT value FROM json_each($3)) RETURNING id",
        stamp.account_id,
        stamp.at,
        &ids,
    )
    .await?;
    audit_changed(tx, stamp, "password_expired", users, &changed).await?;
    Ok(changed)
}

async fn audit_changed(
    tx: &mut Tx,
    stamp: &AuditStamp,
    action: &str,
    users: &[(i64, String)],
    changed: &[i64],
) -> Result<(), StoreError> {
    let rows: Vec<(i64, String)> = users
        .iter()
        .filter(|(id, _)| changed.contains(id))
        .cloned()
        .collect();
    audit::record_changed(tx, stamp, "user", action, &rows).await?;
    Ok(())
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
