//! The circuit breaker's holds: an account held until an administrator confirms.

use chrono::{DateTime, Utc};

use crate::store::{Store, StoreError, Tx, execute, fetch_all, fetch_optional, json_ids};

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
    let sql = format!(
        "SELECT account_id FROM sweep_holds
          WHERE sweep = $1 AND confirmed_at IS NULL AND account_id IN {}",
        tx.dialect().ids_in(2)
    );
    let held: Vec<(i64,)> = fetch_all!(
        tx,
        (i64,),
        sqlx::AssertSqlSafe(sql),
        sweep,
        json_ids(account_ids)
    )?;
    Ok(held.into_iter().map(|(id,)| id).collect())
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
