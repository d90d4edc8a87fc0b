//! What the sweep scenarios share: users placed at chosen instants, sweeps run at a chosen
//! `at`, and the rows and mail they leave.

use chrono::{DateTime, Utc};
use lifecycle::store::Store;
use lifecycle::store::ledger::{JobRecord, state};
use lifecycle_jobs::{ExpirePasswords, LockIdleUsers};

use super::{TestEnv, World};

/// Runs LockIdleUsers over every account at `at` (the clock set there too) and checks it
/// finished.
pub async fn lock_idle_at(env: &mut TestEnv, at: DateTime<Utc>) -> JobRecord {
    env.clock.set(at);
    let job = LockIdleUsers {
        at: Some(at),
        ..Default::default()
    };
    let record = env.run(&job).await;
    assert_eq!(record.state, state::DONE, "{record:?}");
    record
}

/// Runs ExpirePasswords over every account at `at`.
pub async fn expire_passwords_at(env: &mut TestEnv, at: DateTime<Utc>) -> JobRecord {
    env.clock.set(at);
    let job = ExpirePasswords {
        at: Some(at),
        ..Default::default()
    };
    let record = env.run(&job).await;
    assert_eq!(record.state, state::DONE, "{record:?}");
    record
}

/// Runs a statement of the test's own (fixtures: columns the CRM writes) binding `at` as
/// `$1` and `id` as `$2`.
pub async fn exec_at(env: &TestEnv, sql: &str, at: Option<DateTime<Utc>>, id: i64) {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match env.store() {
        Store::Postgres(pool) => sqlx::query(sql)
            .bind(at)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()),
        Store::Sqlite(pool) => sqlx::query(sql)
            .bind(at)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()),
    }
    .unwrap_or_else(|error| panic!("fixture statement: {error}"));
}

/// Runs a statement of the test's own without parameters.
pub async fn exec(env: &TestEnv, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match env.store() {
        Store::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
        Store::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
    }
    .unwrap_or_else(|error| panic!("fixture statement: {error}"));
}

/// Sets the users' last activity (any source) to `at`.
pub async fn last_active(env: &TestEnv, users: &[i64], at: DateTime<Utc>) {
    for user in users {
        exec_at(
            env,
            "UPDATE users SET last_activity_at = $1 WHERE id = $2",
            Some(at),
            *user,
        )
        .await;
    }
}

/// A text column of one row, by a query with one `$1` id parameter.
pub async fn text(env: &TestEnv, sql: &str, id: i64) -> String {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match env.store() {
        Store::Postgres(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
    }
    .unwrap_or_else(|error| panic!("read: {error}"))
}

/// Every user the sweep events of `account` list, in event order, each as often as listed.
pub async fn users_listed_in_events(env: &TestEnv, account: i64) -> Vec<i64> {
    let sql = "SELECT changes FROM events WHERE account_id = $1 AND kind LIKE 'sweep::%'
                ORDER BY id";
    let events: Vec<String> = match env.store() {
        Store::Postgres(pool) => sqlx::query_scalar(sql).bind(account).fetch_all(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(sql).bind(account).fetch_all(pool).await,
    }
    .unwrap_or_else(|error| panic!("read events: {error}"));
    events
        .iter()
        .flat_map(|changes| {
            let changes: serde_json::Value = serde_json::from_str(changes).unwrap();
            changes
                .as_array()
                .unwrap()
                .iter()
                .filter(|change| change["entity"] == "user")
                .map(|change| change["entity_id"].as_i64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

pub async fn status(env: &TestEnv, user: i64) -> String {
    text(env, "SELECT status FROM users WHERE id = $1", user).await
}

/// Emails recorded for the user from `template` (recorded with the change, whether or not
/// delivered yet).
pub async fn emails(env: &TestEnv, user: i64, template: &str) -> i64 {
    env.scalar_text_param(
        "SELECT COUNT(*) FROM email_messages WHERE user_id = $1 AND template = $2",
        user,
        template,
    )
    .await
}

/// Audit rows of the user for `action`.
pub async fn audits(env: &TestEnv, user: i64, action: &str) -> i64 {
    env.scalar_text_param(
        "SELECT COUNT(*) FROM audit_log WHERE entity = 'user' AND entity_id = $1 AND action = $2",
        user,
        action,
    )
    .await
}

/// `count` active agents of the world's account, recently active at `at`, so they neither
/// fall due nor get warned: the rest of an account the breaker measures against.
pub async fn active_agents(
    env: &TestEnv,
    world: &World,
    prefix: &str,
    count: usize,
    at: DateTime<Utc>,
) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in 0..count {
        ids.push(super::seed_agent(env, world, &format!("{prefix}{n}"), "en").await);
    }
    last_active(env, &ids, at).await;
    ids
}

/// The account's time zone.
pub async fn account_time_zone(env: &TestEnv, account: i64, zone: &str) {
    exec(
        env,
        &format!("UPDATE accounts SET time_zone = '{zone}' WHERE id = {account}"),
    )
    .await;
}
