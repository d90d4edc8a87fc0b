//! Salesperson licenses and the seats they take.

use chrono::{DateTime, Utc};

use super::{Dialect, StoreError, Tx, execute, fetch_all, fetch_optional, fetch_scalar};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LicenseRow {
    pub id: i64,
    pub account_id: i64,
    pub user_id: i64,
    pub country: String,
    pub state: String,
    pub release_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
}

/// The user's live (`active` or `releasing`) license, if any.
pub async fn live_for_user(tx: &mut Tx, user_id: i64) -> Result<Option<LicenseRow>, StoreError> {
    fetch_optional!(
        tx,
        LicenseRow,
        "SELECT id, account_id, user_id, country, state, release_at, released_at
           FROM salesperson_licenses WHERE user_id = $1 AND state IN ('active', 'releasing')",
        user_id
    )
}

/// The user's live license, its row locked until the transaction ends: what a job reads
/// here (`active` or `releasing`) stays true until it commits. A release that committed
/// while this waited is seen: the row is then `released` and not returned. Callers lock
/// the user first (see [`super::users::lock_in_account`]), then this, then the pool.
pub async fn live_for_user_locked(
    tx: &mut Tx,
    user_id: i64,
) -> Result<Option<LicenseRow>, StoreError> {
    match tx.dialect() {
        Dialect::Postgres => fetch_optional!(
            tx,
            LicenseRow,
            "SELECT id, account_id, user_id, country, state, release_at, released_at
               FROM salesperson_licenses
              WHERE user_id = $1 AND state IN ('active', 'releasing')
                FOR UPDATE",
            user_id
        ),
        // The job's write transaction is already exclusive.
        Dialect::Sqlite => live_for_user(tx, user_id).await,
    }
}

/// The license `license_id`, its row locked until the transaction ends (the latest
/// committed version: a reclaim that committed while this waited is seen).
pub async fn find_locked(tx: &mut Tx, license_id: i64) -> Result<Option<LicenseRow>, StoreError> {
    match tx.dialect() {
        Dialect::Postgres => fetch_optional!(
            tx,
            LicenseRow,
            "SELECT id, account_id, user_id, country, state, release_at, released_at
               FROM salesperson_licenses WHERE id = $1 FOR UPDATE",
            license_id
        ),
        Dialect::Sqlite => find(tx, license_id).await,
    }
}

pub async fn find(tx: &mut Tx, license_id: i64) -> Result<Option<LicenseRow>, StoreError> {
    fetch_optional!(
        tx,
        LicenseRow,
        "SELECT id, account_id, user_id, country, state, release_at, released_at
           FROM salesperson_licenses WHERE id = $1",
        license_id
    )
}

/// Licenses in state `active` in one country of an account.
pub async fn count_active_in(
    tx: &mut Tx,
    account_id: i64,
    country: &str,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "SELECT COUNT(*) FROM salesperson_licenses
          WHERE account_id = $1 AND country = $2 AND state = 'active'",
        account_id,
        country
    )
}

/// `active -> releasing`: the seat stays taken (and billed) until `release_at`.
pub async fn start_releasing(
    tx: &mut Tx,
    license_id: i64,
    release_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE salesperson_licenses SET state = 'releasing', release_at = $2
          WHERE id = $1 AND state = 'active'",
        license_id,
        release_at
    )?;
    Ok(changed == 1)
}

/// `releasing -> released` once `release_at` has come: the seat is free.
pub async fn release_if_due(
    tx: &mut Tx,
    license_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE salesperson_licenses SET state = 'released', released_at = $2
          WHERE id = $1 AND state = 'releasing' AND release_at <= $2",
        license_id,
        now
    )?;
    Ok(changed == 1)
}

/// Locks the pool of `country` until the transaction ends, so that jobs taking seats in
/// one pool run one after the other (two racing for the last seat: the second sees the
/// first's license). Returns the pool's seats, `None` when the account has no pool there.
///
/// A no-op UPDATE rather than `SELECT .. FOR UPDATE`: the same statement locks the row on
/// PostgreSQL and runs inside SQLite's already exclusive write transaction.
pub async fn lock_pool(
    tx: &mut Tx,
    account_id: i64,
    country: &str,
) -> Result<Option<i64>, StoreError> {
    let seats: Option<i32> = fetch_optional!(
        tx,
        (i32,),
        "UPDATE license_pools SET seats = seats WHERE account_id = $1 AND country = $2
         RETURNING seats",
        account_id,
        country
    )?
    .map(|(seats,)| seats);
    Ok(seats.map(i64::from))
}

/// Seats taken in a pool: licenses `active` or `releasing`.
pub async fn seats_taken(tx: &mut Tx, account_id: i64, country: &str) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "SELECT COUNT(*) FROM salesperson_licenses
          WHERE account_id = $1 AND country = $2 AND state IN ('active', 'releasing')",
        account_id,
        country
    )
}

/// A new `active` license: the user takes a seat.
pub async fn insert_active(
    tx: &mut Tx,
    account_id: i64,
    user_id: i64,
    country: &str,
    at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO salesperson_licenses (account_id, user_id, country, state, created_at)
         VALUES ($1, $2, $3, 'active', $4) RETURNING id",
        account_id,
        user_id,
        country,
        at
    )
}

/// `releasing -> active`: the user keeps the seat they still hold, no second seat taken.
pub async fn reclaim(tx: &mut Tx, license_id: i64) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE salesperson_licenses SET state = 'active', release_at = NULL
          WHERE id = $1 AND state = 'releasing'",
        license_id
    )?;
    Ok(changed == 1)
}

/// Up to `limit` `releasing` licenses of any account due by `at`, with ids above `after`,
/// in id order: one batch of the release sweep (and what its dry-run lists).
pub async fn due_after(
    tx: &mut Tx,
    at: DateTime<Utc>,
    after: i64,
    limit: i64,
) -> Result<Vec<LicenseRow>, StoreError> {
    fetch_all!(
        tx,
        LicenseRow,
        "SELECT id, account_id, user_id, country, state, release_at, released_at
           FROM salesperson_licenses
          WHERE state = 'releasing' AND release_at <= $1 AND id > $2
          ORDER BY id LIMIT $3",
        at,
        after,
        limit
    )
}
