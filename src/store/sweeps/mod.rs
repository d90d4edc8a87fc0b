//! The nightly sweeps' statements: the accounts and their policies (here), their active
//! users in keyset pages, a bounded number of rows per statement, never all users at once
//! (`users`), the set-based changes of a batch and the staged-warning markers (`changes`:
//! `UPDATE .. WHERE .. AND <still due> RETURNING`, so a rerun changes nothing twice), and
//! the breaker's holds (`holds`).

mod changes;
mod holds;
mod users;

pub use changes::{WarningDue, lock_idle, mark_warning, mark_warnings, require_password_change};
pub use holds::{Hold, confirm_hold, held_accounts, hold, open_hold, open_holds};
pub use users::{
    AccountPeople, SweepUser, UserFacts, active_user_facts_after, active_user_managers,
    active_users_after, active_users_locked, people_of,
};

use super::accounts::AccountRow;
use super::{StoreError, Tx, fetch_all, json_ids};

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
/// The accounts of `ids` with their sweep policies, in id order.
pub async fn accounts_of(tx: &mut Tx, ids: &[i64]) -> Result<Vec<SweepAccount>, StoreError> {
    let sql = format!(
        "SELECT id, name, time_zone, billing_anchor_day, contacts_policy, failed_login_limit,
                idle_days, password_max_age_days
           FROM accounts WHERE id IN {} ORDER BY id",
        tx.dialect().ids_in(1)
    );
    fetch_all!(tx, SweepAccount, sqlx::AssertSqlSafe(sql), json_ids(ids))
}
