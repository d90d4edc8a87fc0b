//! Salesperson licenses and the seats they take.

use chrono::{DateTime, Utc};

use super::{StoreError, Tx, execute, fetch_optional, fetch_scalar};

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
