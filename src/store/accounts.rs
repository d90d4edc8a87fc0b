//! Accounts (tenants) and their policies.

use chrono_tz::Tz;

use super::{StoreError, Tx, fetch_optional, fetch_scalar};
use crate::domain::user::ContactsPolicy;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: i64,
    pub name: String,
    pub time_zone: String,
    pub billing_anchor_day: i32,
    pub contacts_policy: String,
    /// The account's own limit of consecutive failed sign-ins, if it set one.
    pub failed_login_limit: Option<i32>,
}

impl AccountRow {
    /// The account's IANA time zone; an unknown name falls back to UTC.
    pub fn time_zone(&self) -> Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::UTC)
    }

    pub fn contacts_policy(&self) -> ContactsPolicy {
        ContactsPolicy::parse(&self.contacts_policy).unwrap_or(ContactsPolicy::Unassign)
    }
}

pub async fn find(tx: &mut Tx, account_id: i64) -> Result<Option<AccountRow>, StoreError> {
    fetch_optional!(
        tx,
        AccountRow,
        "SELECT id, name, time_zone, billing_anchor_day, contacts_policy, failed_login_limit
           FROM accounts WHERE id = $1",
        account_id
    )
}

pub async fn active_phone_numbers_in(
    tx: &mut Tx,
    account_id: i64,
    country: &str,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "SELECT COUNT(*) FROM phone_numbers WHERE account_id = $1 AND country = $2 AND active = TRUE",
        account_id,
        country
    )
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoleRow {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub rank: i32,
}

pub async fn find_role(tx: &mut Tx, role_id: i64) -> Result<Option<RoleRow>, StoreError> {
    fetch_optional!(
        tx,
        RoleRow,
        "SELECT id, account_id, name, rank FROM roles WHERE id = $1",
        role_id
    )
}
