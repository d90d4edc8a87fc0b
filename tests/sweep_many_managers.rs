//! The last-manager exemption is exact however many managers an account has: with 10,002
//! active users who may manage users, all idle, the one seen most recently (the highest id
//! here, past the first 10,000) is the one kept. Both backends.

mod common;

use chrono::Duration;
use common::sweeps::*;
use common::{Backend, TestEnv, seed_world, start_time};
use lifecycle::handlers::sweep::{Scope, SweepKind, preview};
use lifecycle::store::Store;

/// Managers idle since the start, before the one seen last.
const IDLE_MANAGERS: i64 = 10_000;

async fn the_last_manager_is_found_past_ten_thousand(backend: Backend) {
    let env = TestEnv::start_with(backend, |settings| settings.sweeps.breaker_share = 1.0).await;
    let world = seed_world(&env, 1).await;
    let t0 = start_time();
    last_active(&env, &[world.admin], t0).await;
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {IDLE_MANAGERS})
         INSERT INTO users (account_id, role_id, first_name, last_name, email, email_normalized,
                            country, status, confirmed_at, created_at, updated_at,
                            password_changed_at, last_activity_at, language)
         SELECT {account}, {role}, 'Manager' || i, 'Admin', 'm' || i || '@acme.test',
                'm' || i || '@acme.test', 'ES', 'active', $1, $1, $1, $1, $1, 'en' FROM n",
        account = world.account,
        role = world.admin_role,
    );
    let sql = sqlx::AssertSqlSafe(sql);
    match env.store() {
        Store::Postgres(pool) => sqlx::query(sql).bind(t0).execute(pool).await.map(|_| ()),
        Store::Sqlite(pool) => sqlx::query(sql).bind(t0).execute(pool).await.map(|_| ()),
    }
    .expect("seed managers");
    let newest = common::seed_agent(&env, &world, "Newest", "en").await;
    exec(
        &env,
        &format!(
            "UPDATE users SET role_id = {} WHERE id = {newest}",
            world.admin_role
        ),
    )
    .await;
    last_active(&env, &[newest], t0 + Duration::days(10)).await;

    let scope = Scope {
        at: t0 + Duration::days(101),
        account_id: world.account,
        confirm_accounts: vec![],
    };
    let previews = preview::preview(
        env.store(),
        &env.app.settings.sweeps,
        SweepKind::LockIdle,
        &scope,
    )
    .await
    .unwrap();
    let users = &previews[0].users;
    assert_eq!(users.len() as i64, IDLE_MANAGERS + 2);
    let verdict = |user: i64| {
        users
            .iter()
            .find(|row| row.user_id == user)
            .map(|row| row.verdict.clone())
            .unwrap()
    };
    assert_eq!(verdict(newest), "exempt:last_user_manager");
    assert_eq!(verdict(world.admin), "lock");
    let kept = users
        .iter()
        .filter(|row| row.verdict == "exempt:last_user_manager")
        .count();
    assert_eq!(kept, 1);
}

on_both_backends!(the_last_manager_is_found_past_ten_thousand);
