//! Worker processes killed with `kill -9` at random moments, 20 times during a run, then
//! three processes sharing the queue: every job completes, none is applied twice (each
//! user's failure counter holds exactly the failures reported) and no email goes out twice
//! (the SMTP sink counts one lock notice per user). On both backends.
//!
//! `CRASH_ROUNDS` and `CRASH_JOBS` scale it (defaults 20 and 2,000).

mod common;

use std::time::{Duration, Instant};

use common::process::Service;
use common::{Backend, TestEnv, UNEXPLAINED_ATTEMPTS, World, enqueue_failed_logins, seed_world};
use lifecycle::store::users;
use rand::Rng;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

const DONE: &str = "SELECT COUNT(*) FROM jobs
     WHERE kind = 'user::record_login' AND state = 'done' AND account_id = $1";

async fn wait_all_done(env: &TestEnv, world: &World, total: i64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = env.scalar(DONE, world.account).await;
        if done == total {
            return;
        }
        assert!(Instant::now() < deadline, "{done} of {total} done");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each failure counted once; one lock notice per user. A worker killed after the SMTP
/// server took a message but before its `sent` mark committed sends it again on retry:
/// SMTP cannot tell the sender whether the final dot arrived. Such a resend carries the
/// same Message-ID (receiving systems drop it as the same message), so what is counted is
/// the distinct messages; a different one for the same change would be a real duplicate.
async fn applied_once_and_mailed_once(env: &TestEnv, agents: &[i64], per_agent: usize) {
    let mut tx = env.store().begin_read().await.unwrap();
    let mut addresses = Vec::new();
    for agent in agents {
        let user = users::find(&mut tx, *agent).await.unwrap().unwrap();
        assert_eq!(user.failed_logins as usize, per_agent, "user {agent}");
        assert_eq!(user.status, "locked");
        addresses.push(user.email);
    }
    tx.commit().await.unwrap();
    let account = env
        .scalar("SELECT account_id FROM users WHERE id = $1", agents[0])
        .await;
    assert_eq!(
        env.scalar(UNEXPLAINED_ATTEMPTS, account).await,
        0,
        "every attempt that did not succeed says why it ended"
    );
    env.mail(agents.len()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = env.sink.messages();
    for address in &addresses {
        let ids: std::collections::BTreeSet<String> = env
            .sink
            .messages_to(address)
            .iter()
            .map(|message| message.header("Message-ID").expect("a Message-ID"))
            .collect();
        assert_eq!(ids.len(), 1, "{address}: one lock notice, {ids:?}");
    }
    println!(
        "{} messages received for {} notices ({} resent after a kill)",
        messages.len(),
        agents.len(),
        messages.len() - agents.len()
    );
}

/// Short visibility timeout: a killed worker's jobs are taken over within seconds.
const FAST_TAKEOVER: [(&str, &str); 3] = [
    ("LIFECYCLE__QUEUE__VISIBILITY_TIMEOUT_SECS", "2"),
    ("LIFECYCLE__QUEUE__RECONCILE_INTERVAL_SECS", "1"),
    ("LIFECYCLE__QUEUE__CONCURRENCY", "8"),
];

async fn kill_9_at_random_moments_loses_nothing_and_repeats_nothing(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let total = setting("CRASH_JOBS", 2_000);
    let agents = enqueue_failed_logins(&env, &world, 20, total / 20).await;
    let total = (agents.len() * (total / 20)) as i64;
    let rounds = setting("CRASH_ROUNDS", 20);
    let mut killed_with_work_left = 0;
    for _ in 0..rounds {
        let mut worker = Service::start(&env, &FAST_TAKEOVER, None).await;
        let pause = rand::rng().random_range(50..400);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        worker.kill();
        if env.scalar(DONE, world.account).await < total {
            killed_with_work_left += 1;
        }
    }
    assert!(killed_with_work_left > 0, "the kills landed mid-run");
    // One last worker, left to finish.
    let _last = Service::start(&env, &FAST_TAKEOVER, None).await;
    wait_all_done(&env, &world, total).await;
    applied_once_and_mailed_once(&env, &agents, (total as usize) / agents.len()).await;
}

async fn three_processes_share_the_queue_and_apply_each_job_once(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let per_agent = 200;
    let agents = enqueue_failed_logins(&env, &world, 50, per_agent).await;
    let total = (agents.len() * per_agent) as i64;
    let _workers = [
        Service::start(&env, &FAST_TAKEOVER, None).await,
        Service::start(&env, &FAST_TAKEOVER, None).await,
        Service::start(&env, &FAST_TAKEOVER, None).await,
    ];
    wait_all_done(&env, &world, total).await;
    let applied = "SELECT COUNT(*) FROM applied_jobs a JOIN jobs j ON j.id = a.job_id
         WHERE j.kind = 'user::record_login' AND j.account_id = $1";
    assert_eq!(env.scalar(applied, world.account).await, total);
    applied_once_and_mailed_once(&env, &agents, per_agent).await;
}

/// The default visibility timeout (300 s) and quick heartbeats: a process killed while it
/// holds jobs is found dead by its silence, and another puts its jobs back; they run again
/// within 30 s of the kill (SPEC §7), each attempt's end recorded.
async fn a_killed_process_jobs_run_again_within_30_seconds(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let agents = enqueue_failed_logins(&env, &world, 20, 100).await;
    let total = (agents.len() * 100) as i64;
    let beats = [
        ("LIFECYCLE__QUEUE__HEARTBEAT_INTERVAL_SECS", "2"),
        ("LIFECYCLE__QUEUE__HEARTBEAT_TIMEOUT_SECS", "8"),
        ("LIFECYCLE__QUEUE__CONCURRENCY", "8"),
    ];
    let held_sql = "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND account_id = $1";
    let mut worker = Service::start(&env, &beats, None).await;
    // Kill it once it holds jobs, with work left.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the worker never held a job");
        if env.scalar(held_sql, world.account).await > 0
            && env.scalar(DONE, world.account).await > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.kill();
    let killed_at = Instant::now();
    let held = held_jobs(&env, world.account).await;
    assert!(!held.is_empty(), "the killed process held jobs");
    let _next = Service::start(&env, &beats, None).await;
    loop {
        let still_held = held_jobs(&env, world.account).await;
        // Back: no longer held by the claim the killed process made.
        let back = held
            .iter()
            .filter(|claim| !still_held.contains(claim))
            .count();
        if back == held.len() {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "{} of {} jobs the killed process held are still held after 30 s",
            held.len() - back,
            held.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_all_done(&env, &world, total).await;
    applied_once_and_mailed_once(&env, &agents, 100).await;
}

/// The claims held now: each running job and the consumer holding it.
async fn held_jobs(env: &TestEnv, account: i64) -> Vec<(uuid::Uuid, String)> {
    let sql = "SELECT id, locked_by FROM jobs WHERE state = 'running' AND account_id = $1
                AND locked_by IS NOT NULL";
    match env.store() {
        lifecycle::store::Store::Postgres(pool) => {
            sqlx::query_as(sql).bind(account).fetch_all(pool).await
        }
        lifecycle::store::Store::Sqlite(pool) => {
            sqlx::query_as(sql).bind(account).fetch_all(pool).await
        }
    }
    .unwrap()
}

on_both_backends!(
    a_killed_process_jobs_run_again_within_30_seconds,
    kill_9_at_random_moments_loses_nothing_and_repeats_nothing,
    three_processes_share_the_queue_and_apply_each_job_once,
);
