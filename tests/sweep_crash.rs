//! A real `lifecycle run` killed with `kill -9` halfway through LockIdleUsers, then another
//! process finishing the same job: every idle user locked once (one `idle` lock audit row
//! each), one lock notice each in the emails table and at the SMTP sink, nobody exempt
//! locked. Both backends.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::process::Service;
use common::sweeps::*;
use common::{Backend, TestEnv, request, seed_agent, seed_world, start_time};
use lifecycle::store::Store;
use lifecycle::store::ledger::state;
use lifecycle_jobs::LockIdleUsers;

/// Idle users: with 20 per batch, 150 batches, so a poll lands between two of them.
const IDLE: i64 = 3_000;

/// Small batches, no breaker (every idle user here is due; the breaker has its own tests),
/// quick heartbeats so the second process takes the killed one's job over within seconds.
const SMALL_BATCHES: [(&str, &str); 5] = [
    ("LIFECYCLE__SWEEPS__BATCH_SIZE", "20"),
    ("LIFECYCLE__SWEEPS__BREAKER_SHARE", "1.0"),
    ("LIFECYCLE__QUEUE__HEARTBEAT_INTERVAL_SECS", "1"),
    ("LIFECYCLE__QUEUE__HEARTBEAT_TIMEOUT_SECS", "3"),
    ("LIFECYCLE__QUEUE__CONCURRENCY", "8"),
];

/// `count` active agents of the account idle since `since`, written in one statement as the
/// CRM would (a recursive row source both dialects share).
async fn idle_agents(env: &TestEnv, account: i64, role: i64, count: i64, since: DateTime<Utc>) {
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
         INSERT INTO users (account_id, role_id, first_name, last_name, email, email_normalized,
                            country, status, confirmed_at, created_at, updated_at,
                            password_changed_at, last_activity_at, language)
         SELECT {account}, {role}, 'Idle' || i, 'Agent', 'idle' || i || '@acme.test',
                'idle' || i || '@acme.test', 'ES', 'active', $1, $1, $1, $1, $1, 'en' FROM n"
    );
    let sql = sqlx::AssertSqlSafe(sql);
    match env.store() {
        Store::Postgres(pool) => sqlx::query(sql).bind(since).execute(pool).await.map(|_| ()),
        Store::Sqlite(pool) => sqlx::query(sql).bind(since).execute(pool).await.map(|_| ()),
    }
    .expect("seed idle agents");
}

const LOCKED_IDLE: &str = "SELECT COUNT(*) FROM users WHERE account_id = $1 AND status = 'locked' AND lock_reason = 'idle'";

/// Users of the account whose count of `what` rows is not exactly one.
const NOT_ONE_AUDIT: &str = "SELECT COUNT(*) FROM users u WHERE u.account_id = $1
     AND u.status = 'locked'
     AND (SELECT COUNT(*) FROM audit_log a
           WHERE a.entity = 'user' AND a.entity_id = u.id AND a.action = 'locked') <> 1";
const NOT_ONE_EMAIL: &str = "SELECT COUNT(*) FROM users u WHERE u.account_id = $1
     AND u.status = 'locked'
     AND (SELECT COUNT(*) FROM email_messages m
           WHERE m.user_id = u.id AND m.template = 'locked_idle') <> 1";
const LOCK_EMAILS: &str = "SELECT COUNT(*) FROM email_messages m JOIN users u ON u.id = m.user_id
     WHERE u.account_id = $1 AND m.template = 'locked_idle'";

async fn killed_halfway_and_rerun_locks_and_mails_each_user_once(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let t0 = start_time();
    let at = t0 + chrono::Duration::days(100);
    idle_agents(&env, world.account, world.agent_role, IDLE, t0).await;
    // The exempt: a service account, a break-glass admin on the account's list, and the
    // admin, the account's last user who may manage users; all as idle as the rest.
    let service = seed_agent(&env, &world, "Service", "en").await;
    let listed = seed_agent(&env, &world, "Listed", "en").await;
    exec(
        &env,
        &format!("UPDATE users SET is_service_account = TRUE WHERE id = {service}"),
    )
    .await;
    exec(
        &env,
        &format!(
            "INSERT INTO account_sweep_exemptions (account_id, user_id) VALUES ({}, {listed})",
            world.account
        ),
    )
    .await;
    last_active(&env, &[service, listed, world.admin], t0).await;

    let job = env
        .enqueue(request(&LockIdleUsers {
            at: Some(at),
            ..Default::default()
        }))
        .await;
    let mut first = Service::start(&env, &SMALL_BATCHES, None).await;
    let started = Instant::now();
    loop {
        // Killed around a third of the way: batches committed, many left.
        let locked = env.scalar(LOCKED_IDLE, world.account).await;
        if locked >= IDLE / 3 {
            assert!(locked < IDLE, "the sweep finished before the kill");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no user locked"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill();
    let locked_at_kill = env.scalar(LOCKED_IDLE, world.account).await;
    assert!(
        locked_at_kill < IDLE,
        "killed halfway: {locked_at_kill} of {IDLE}"
    );
    assert_ne!(env.job(job.id).await.state, state::DONE);

    let _second = Service::start(&env, &SMALL_BATCHES, None).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    let record = loop {
        let record = env.job(job.id).await;
        if record.state == state::DONE {
            break record;
        }
        assert_ne!(record.state, state::DEAD, "{record:?}");
        assert!(Instant::now() < deadline, "the rerun did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record.attempts, 2, "one attempt killed, one that finished");

    assert_eq!(env.scalar(LOCKED_IDLE, world.account).await, IDLE);
    for exempt in [service, listed, world.admin] {
        assert_eq!(status(&env, exempt).await, "active", "user {exempt}");
    }
    assert_eq!(env.scalar(NOT_ONE_AUDIT, world.account).await, 0);
    assert_eq!(env.scalar(NOT_ONE_EMAIL, world.account).await, 0);
    assert_eq!(env.scalar(LOCK_EMAILS, world.account).await, IDLE);

    // What the mailboxes hold: one lock notice per idle user. A process killed after the
    // SMTP server took a message but before its `sent` mark committed sends it again, with
    // the same Message-ID (SMTP cannot tell the sender the final dot arrived), so distinct
    // Message-IDs are counted.
    let deadline = Instant::now() + Duration::from_secs(120);
    let by_address = loop {
        let mut by_address: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for message in env.sink.messages() {
            let id = message.header("Message-ID").expect("a Message-ID");
            by_address.entry(message.to()).or_default().insert(id);
        }
        if by_address.len() as i64 >= IDLE {
            break by_address;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {IDLE} mailboxes reached",
            by_address.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(by_address.len() as i64, IDLE, "nobody else was mailed");
    for (address, ids) in &by_address {
        assert!(address.contains("idle"), "{address} was mailed");
        assert_eq!(ids.len(), 1, "{address}: {ids:?}");
    }
    println!("{locked_at_kill} of {IDLE} locked when the first process was killed");
}

on_both_backends!(killed_halfway_and_rerun_locks_and_mails_each_user_once);
