//! ExpirePasswords: must-change-password at 120 days (or the account's own maximum age),
//! the staged warnings before, once each; and the dry-run of both sweeps changing nothing.

mod common;

use chrono::Duration;
use common::sweeps::*;
use common::{Backend, TestEnv, seed_agent, seed_world, start_time};
use lifecycle::handlers::sweep::{Breaker, Scope, SweepKind, preview};

async fn must_change(env: &TestEnv, user: i64) -> i64 {
    env.scalar(
        "SELECT COUNT(*) FROM users WHERE id = $1 AND must_change_password = TRUE",
        user,
    )
    .await
}

/// Warned 14 and 1 days before in Spanish with the date, not yet changed a minute before
/// 120 days, must change at 120 days, emailed once; the next night changes nothing more.
async fn passwords_expire_at_120_days(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let pia = seed_agent(&env, &world, "Pia", "es").await;
    // Created (and their password set) at the start; the admin's a month later.
    exec_at(
        &env,
        "UPDATE users SET password_changed_at = $1 WHERE id = $2",
        Some(start_time() + Duration::days(30)),
        world.admin,
    )
    .await;
    let expiry = start_time() + Duration::days(120);

    expire_passwords_at(&mut env, expiry - Duration::days(14)).await;
    assert_eq!(emails(&env, pia, "password_expiry_warning").await, 1);
    let warning = env.mail(1).await.pop().unwrap();
    assert!(
        warning.subject().contains("caduca el 2026-07-08 12:00 UTC"),
        "{}",
        warning.subject()
    );

    let almost = expiry - Duration::minutes(1);
    expire_passwords_at(&mut env, almost).await;
    assert_eq!(must_change(&env, pia).await, 0);
    assert_eq!(emails(&env, pia, "password_expiry_warning").await, 2);

    expire_passwords_at(&mut env, expiry).await;
    assert_eq!(must_change(&env, pia).await, 1);
    assert_eq!(must_change(&env, world.admin).await, 0);
    assert_eq!(audits(&env, pia, "password_expired").await, 1);
    assert_eq!(emails(&env, pia, "password_expired").await, 1);
    let notice = env.mail(3).await.pop().unwrap();
    assert!(
        notice.subject().contains("ha caducado"),
        "{}",
        notice.subject()
    );

    expire_passwords_at(&mut env, expiry + Duration::days(1)).await;
    assert_eq!(audits(&env, pia, "password_expired").await, 1);
    assert_eq!(emails(&env, pia, "password_expired").await, 1);
    assert_eq!(status(&env, pia).await, "active");
}

/// An account's own password_max_age_days wins over the default.
async fn the_account_maximum_age_wins(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    exec(
        &env,
        &format!(
            "UPDATE accounts SET password_max_age_days = 30 WHERE id = {}",
            world.account
        ),
    )
    .await;
    let pia = seed_agent(&env, &world, "Pia", "es").await;
    expire_passwords_at(&mut env, start_time() + Duration::days(29)).await;
    assert_eq!(must_change(&env, pia).await, 0);
    expire_passwords_at(&mut env, start_time() + Duration::days(30)).await;
    assert_eq!(must_change(&env, pia).await, 1);
}

/// The dry-run of both sweeps, with users due, warned, exempt and an account held, leaves
/// every row of every table as it was.
async fn the_dry_run_changes_nothing(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let idle = seed_agent(&env, &world, "Idle", "en").await;
    let soon = seed_agent(&env, &world, "Soon", "en").await;
    last_active(&env, &[idle, world.admin], start_time()).await;
    last_active(&env, &[soon], start_time() + Duration::days(10)).await;
    let at = start_time() + Duration::days(95);
    let before = env.all_rows_as_text().await;
    for kind in [SweepKind::LockIdle, SweepKind::ExpirePasswords] {
        let scope = Scope {
            at,
            account_id: world.account,
            confirm_accounts: vec![],
        };
        let previews = preview::preview(env.store(), &env.app.settings.sweeps, kind, &scope)
            .await
            .unwrap();
        assert_eq!(previews.len(), 1);
        if kind == SweepKind::LockIdle {
            // One of three would be locked: more than 20 %, the breaker would hold.
            assert_eq!(previews[0].breaker, Breaker::Trips);
            let verdicts: Vec<(i64, &str)> = previews[0]
                .users
                .iter()
                .map(|r| (r.user_id, r.verdict.as_str()))
                .collect();
            assert!(
                verdicts.contains(&(idle, "held_by_breaker")),
                "{verdicts:?}"
            );
            assert!(verdicts.contains(&(soon, "warn_7d")), "{verdicts:?}");
            assert!(
                verdicts.contains(&(world.admin, "exempt:last_user_manager")),
                "{verdicts:?}"
            );
            assert!(preview::table(&previews).contains("held_by_breaker"));
        }
    }
    assert_eq!(env.all_rows_as_text().await, before);
}

on_both_backends!(
    passwords_expire_at_120_days,
    the_account_maximum_age_wins,
    the_dry_run_changes_nothing,
);

fn lifecycle(folder: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lifecycle"))
        .current_dir(folder)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("LIFECYCLE_ENV")
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

/// On the embedded default, offline: after `lifecycle demo`, the idle sweep's dry-run names
/// every verdict (lock, each exemption of the demo, a warning) and changes no row; the
/// sweep without `--dry-run` is enqueued as a job; `--confirm` needs `--account`.
#[test]
fn the_demo_shows_every_verdict_in_the_dry_run() {
    let folder = tempfile::tempdir().unwrap();
    assert!(lifecycle(folder.path(), &["demo"]).status.success());
    let database = folder.path().join("var/lifecycle.db");
    let before = std::fs::read(&database).unwrap();
    let output = lifecycle(folder.path(), &["sweep", "lock-idle", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    for verdict in [
        "ivo@acme.example",
        " lock",
        "exempt:service_account",
        "exempt:exempt_list",
        "warn_7d",
        "breaker Clear",
    ] {
        assert!(stdout.contains(verdict), "{verdict} missing:\n{stdout}");
    }
    let json = lifecycle(
        folder.path(),
        &["sweep", "expire-passwords", "--dry-run", "--json"],
    );
    let previews: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(previews[0]["users"][0]["verdict"], "expire_password");
    assert_eq!(
        std::fs::read(&database).unwrap(),
        before,
        "a dry run writes nothing"
    );

    let refused = lifecycle(folder.path(), &["sweep", "lock-idle", "--confirm"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--account"));
    let enqueued = lifecycle(folder.path(), &["sweep", "lock-idle", "--account", "1"]);
    assert!(enqueued.status.success());
    let job_id = String::from_utf8_lossy(&enqueued.stdout).trim().to_string();
    let shown = lifecycle(folder.path(), &["jobs", "show", &job_id]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("sweep::lock_idle_users"));
}
