//! The CRM's own rows: accounts, roles, users, teams, licenses and the records a salesperson
//! holds, inserted as the CRM (which shares the database) would have them. The service never
//! writes these in production; the demo, the tests and the benches start from them. Each
//! function inserts one row and returns its id. Where the service has an insert of its own
//! for the same row, the fixture calls it, so fixtures and production cannot drift apart.

use chrono::{DateTime, Utc};

use crate::store::{StoreError, Tx, execute, fetch_scalar, licenses, teams};

#[derive(Clone, Debug)]
pub struct NewAccount<'a> {
    pub name: &'a str,
    pub time_zone: &'a str,
    pub billing_anchor_day: i32,
    /// `unassign` or `keep`.
    pub contacts_policy: &'a str,
}

pub async fn account(
    tx: &mut Tx,
    account: &NewAccount<'_>,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO accounts (name, time_zone, billing_anchor_day, contacts_policy, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        account.name,
        account.time_zone,
        account.billing_anchor_day,
        account.contacts_policy,
        now
    )
}

pub async fn role(
    tx: &mut Tx,
    account_id: i64,
    name: &str,
    rank: i32,
    can_manage_users: bool,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO roles (account_id, name, rank, can_manage_users, is_admin)
         VALUES ($1, $2, $3, $4, $4) RETURNING id",
        account_id,
        name,
        rank,
        can_manage_users
    )
}

#[derive(Clone, Debug)]
pub struct NewUser<'a> {
    pub account_id: i64,
    pub role_id: i64,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
    pub country: &'a str,
    /// `pending`, `active`, `locked` or `deactivated`.
    pub status: &'a str,
}

pub async fn user(tx: &mut Tx, user: &NewUser<'_>, now: DateTime<Utc>) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO users (account_id, role_id, first_name, last_name, email, country, status,
                            confirmed_at, created_at, updated_at, password_changed_at,
                            email_normalized)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8, $8, $9) RETURNING id",
        user.account_id,
        user.role_id,
        user.first_name,
        user.last_name,
        user.email,
        user.country,
        user.status,
        now,
        crate::domain::email::normalize_email(user.email)
    )
}

/// A user as the CRM writes it (it shares the database): without the email's comparison
/// key, which the database fills (and, on SQLite, the service corrects at start).
pub async fn crm_user(
    tx: &mut Tx,
    user: &NewUser<'_>,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO users (account_id, role_id, first_name, last_name, email, country, status,
                            confirmed_at, created_at, updated_at, password_changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8, $8) RETURNING id",
        user.account_id,
        user.role_id,
        user.first_name,
        user.last_name,
        user.email,
        user.country,
        user.status,
        now
    )
}

/// A blocklist row as the CRM writes it (it shares the database): the address as the person
/// typed it, without the comparison key, which the database fills.
pub async fn crm_blocklisted_email(
    tx: &mut Tx,
    account_id: i64,
    email: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "INSERT INTO email_blocklist (account_id, email, created_at) VALUES ($1, $2, $3)",
        account_id,
        email,
        now
    )?;
    Ok(())
}

pub async fn license_pool(
    tx: &mut Tx,
    account_id: i64,
    country: &str,
    seats: i32,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "INSERT INTO license_pools (account_id, country, seats) VALUES ($1, $2, $3)",
        account_id,
        country,
        seats
    )?;
    Ok(())
}

pub async fn license(
    tx: &mut Tx,
    account_id: i64,
    user_id: i64,
    country: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    licenses::insert_active(tx, account_id, user_id, country, now).await
}

pub async fn team(
    tx: &mut Tx,
    account_id: i64,
    name: &str,
    leader_id: i64,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO teams (account_id, name, leader_id, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        account_id,
        name,
        leader_id,
        now
    )
}

pub async fn team_member(
    tx: &mut Tx,
    team_id: i64,
    user_id: i64,
    joined_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    teams::add_member(tx, team_id, user_id, joined_at).await
}

pub async fn playbook(tx: &mut Tx, account_id: i64, name: &str) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO playbooks (account_id, name) VALUES ($1, $2) RETURNING id",
        account_id,
        name
    )
}

pub async fn playbook_member(
    tx: &mut Tx,
    playbook_id: i64,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "INSERT INTO playbook_memberships (playbook_id, user_id, joined_at) VALUES ($1, $2, $3)",
        playbook_id,
        user_id,
        now
    )?;
    Ok(())
}

pub async fn phone_number(
    tx: &mut Tx,
    account_id: i64,
    country: &str,
    number: &str,
    active: bool,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO phone_numbers (account_id, country, number, active) VALUES ($1, $2, $3, $4) RETURNING id",
        account_id,
        country,
        number,
        active
    )
}

pub async fn contact(
    tx: &mut Tx,
    account_id: i64,
    assignee_id: Option<i64>,
    name: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO contacts (account_id, assignee_id, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        account_id,
        assignee_id,
        name,
        now
    )
}

pub async fn task(
    tx: &mut Tx,
    account_id: i64,
    assignee_id: Option<i64>,
    title: &str,
    state: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO tasks (account_id, assignee_id, title, state, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        account_id,
        assignee_id,
        title,
        state,
        now
    )
}

pub async fn opportunity(
    tx: &mut Tx,
    account_id: i64,
    owner_id: i64,
    name: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO opportunities (account_id, owner_id, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        account_id,
        owner_id,
        name,
        now
    )
}

/// A live session or API access token; `token` is hashed before it is stored.
pub async fn access_token(
    tx: &mut Tx,
    user_id: i64,
    kind: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO access_tokens (user_id, kind, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        user_id,
        kind,
        lifecycle_jobs::sha256_hex(token),
        now
    )
}

/// Sets the user's API token; `token` is hashed before it is stored.
pub async fn api_token(tx: &mut Tx, user_id: i64, token: &str) -> Result<(), StoreError> {
    execute!(
        tx,
        "UPDATE users SET api_token_hash = $1 WHERE id = $2",
        lifecycle_jobs::sha256_hex(token),
        user_id
    )?;
    Ok(())
}

pub async fn integration(tx: &mut Tx, user_id: i64, kind: &str) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO integrations (user_id, kind) VALUES ($1, $2) RETURNING id",
        user_id,
        kind
    )
}

pub async fn subscription(
    tx: &mut Tx,
    user_id: i64,
    plan: &str,
    state: &str,
) -> Result<i64, StoreError> {
    fetch_scalar!(
        tx,
        "INSERT INTO subscriptions (user_id, plan, state) VALUES ($1, $2, $3) RETURNING id",
        user_id,
        plan,
        state
    )
}

/// Sets the language of a user's emails (`en`, `es`, `fr`, `pt`).
pub async fn user_language(tx: &mut Tx, user_id: i64, language: &str) -> Result<(), StoreError> {
    execute!(
        tx,
        "UPDATE users SET language = $2 WHERE id = $1",
        user_id,
        language
    )?;
    Ok(())
}

/// Makes a user a customer (the kind a purchase can reactivate).
pub async fn make_customer(tx: &mut Tx, user_id: i64) -> Result<(), StoreError> {
    execute!(
        tx,
        "UPDATE users SET kind = 'customer' WHERE id = $1",
        user_id
    )?;
    Ok(())
}

/// Locks a user for `reason` (`failed_logins`, `idle`, `admin`) with `failed_logins`
/// consecutive failures and the last activity at `last_activity_at`.
pub async fn locked(
    tx: &mut Tx,
    user_id: i64,
    reason: &str,
    failed_logins: i32,
    last_activity_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "UPDATE users SET status = 'locked', lock_reason = $2, failed_logins = $3,
                          last_activity_at = $4
          WHERE id = $1",
        user_id,
        reason,
        failed_logins,
        last_activity_at
    )?;
    Ok(())
}

/// A per-user permission override.
pub async fn permission_override(
    tx: &mut Tx,
    user_id: i64,
    permission: &str,
    granted: bool,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "INSERT INTO user_permission_overrides (user_id, permission, granted) VALUES ($1, $2, $3)",
        user_id,
        permission,
        granted
    )?;
    Ok(())
}

/// Sets the account's own limit of consecutive failed sign-ins.
pub async fn failed_login_limit(
    tx: &mut Tx,
    account_id: i64,
    limit: i32,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "UPDATE accounts SET failed_login_limit = $2 WHERE id = $1",
        account_id,
        limit
    )?;
    Ok(())
}
