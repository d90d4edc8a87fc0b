//! A job that runs far longer than `queue.visibility_timeout_secs` keeps its claim while it
//! runs: it is not redelivered to another worker (one attempt, one message sent), its claim
//! renewed as it goes. A long job in a process killed with `kill -9` is still taken over.
//! Real `lifecycle run` processes on both backends; the long job is a SendEmail whose SMTP
//! server (the test's sink) holds its answer to DATA until the test releases it, so the job
//! lasts as long as the test needs without holding any database lock.

mod common;

use std::time::{Duration, Instant};

use common::process::Service;
use common::{Backend, TestEnv, World, request, seed_agent, seed_world};
use lifecycle::store::Store;
use lifecycle::store::emails::{self, NewEmail};
use lifecycle::store::ledger::state;
use lifecycle_jobs::SendEmail;
use uuid::Uuid;

/// A visibility timeout of 3 s (a claim renewed every second), stale claims looked for every
/// second; the mail timeout above the longest the sink is held.
const SHORT_VISIBILITY: [(&str, &str); 5] = [
    ("LIFECYCLE__QUEUE__VISIBILITY_TIMEOUT_SECS", "3"),
    ("LIFECYCLE__QUEUE__RECONCILE_INTERVAL_SECS", "1"),
    ("LIFECYCLE__QUEUE__HEARTBEAT_INTERVAL_SECS", "1"),
    ("LIFECYCLE__QUEUE__HEARTBEAT_TIMEOUT_SECS", "3"),
    ("LIFECYCLE__MAIL__TIMEOUT_SECS", "60"),
];

/// How long the job is held: four visibility timeouts.
const HELD: Duration = Duration::from_secs(12);

async fn pending_email(env: &TestEnv, world: &World) -> i64 {
    let pat = seed_agent(env, world, "Pat", "en").await;
    let variables = serde_json::json!({ "first_name": "Pat", "account_name": "Acme Ventas" });
    let mut tx = env.tx().await;
    let email_id = emails::insert(
        &mut tx,
        &NewEmail {
            account_id: world.account,
            user_id: Some(pat),
            template: "unlocked",
            language: "en",
            to_address: "pat@acme.test",
            to_name: "Pat Agent",
            variables: &variables,
            created_by_job: Uuid::now_v7(),
            created_at: env.clock.now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    email_id
}

/// The job's claim: (state, attempts, locked_at_ms).
async fn claim(env: &TestEnv, job: Uuid) -> (String, i32, Option<i64>) {
    let sql = "SELECT state, attempts, locked_at_ms FROM jobs WHERE id = $1";
    match env.store() {
        Store::Postgres(pool) => sqlx::query_as(sql).bind(job).fetch_one(pool).await,
        Store::Sqlite(pool) => sqlx::query_as(sql).bind(job).fetch_one(pool).await,
    }
    .unwrap()
}

/// Attempts of the job that ended without finishing (each recorded with why).
async fn cut_short(env: &TestEnv, job: Uuid) -> i64 {
    let sql = "SELECT COUNT(*) FROM job_attempt_errors WHERE job_id = $1";
    match env.store() {
        Store::Postgres(pool) => sqlx::query_scalar(sql).bind(job).fetch_one(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(sql).bind(job).fetch_one(pool).await,
    }
    .unwrap()
}

/// The test's stream entries pending in the workers' group: how many, and the first's idle
/// time (ms) and delivery count.
async fn pending_entry(env: &TestEnv) -> (usize, i64, i64) {
    let stream = format!("{{lifecycle:{}}}:stream", env.app.settings.queue.namespace);
    let client = redis::Client::open(common::redis_url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis must answer");
    let entries: Vec<(String, String, i64, i64)> = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("workers")
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(&mut conn)
        .await
        .expect("XPENDING");
    let (_, _, idle_ms, deliveries) = entries.first().cloned().unwrap_or_default();
    (entries.len(), idle_ms, deliveries)
}

async fn wait_done(env: &TestEnv, job: Uuid) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (state, attempts, _) = claim(env, job).await;
        if state == state::DONE {
            return attempts;
        }
        assert_ne!(state, state::DEAD);
        assert!(Instant::now() < deadline, "the job did not finish: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two processes, a job held four visibility timeouts: it stays with its first claim, whose
/// `locked_at_ms` moves forward as it runs, and finishes in one attempt, one message sent.
async fn a_long_job_is_not_redelivered_while_it_runs(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let email_id = pending_email(&env, &world).await;
    env.sink.set_dawdle(Duration::from_secs(60));
    let job = env
        .enqueue(request(&SendEmail {
            account_id: world.account,
            email_id,
        }))
        .await
        .id;
    let _workers = [
        Service::start(&env, &SHORT_VISIBILITY, None).await,
        Service::start(&env, &SHORT_VISIBILITY, None).await,
    ];
    env.sink.wait_for_dawdling(1, Duration::from_secs(30)).await;
    let (_, _, first_lock) = claim(&env, job).await;
    let held_since = Instant::now();
    let mut renewals = 0;
    let mut last_lock = first_lock;
    while held_since.elapsed() < HELD {
        let (state, attempts, locked_at) = claim(&env, job).await;
        assert_eq!(state, state::RUNNING, "still running");
        assert_eq!(attempts, 1, "not redelivered");
        if locked_at != last_lock {
            renewals += 1;
            last_lock = locked_at;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        renewals >= 3,
        "the claim was renewed as the job ran: {renewals}"
    );
    if backend == Backend::PostgresRedis {
        // Its stream entry too: still pending, delivered once, idle less than the timeout
        // (without the renewal, XAUTOCLAIM would have handed it to another consumer).
        let (pending, idle_ms, deliveries) = pending_entry(&env).await;
        assert_eq!(pending, 1, "the entry is still pending");
        assert!(idle_ms < 3_000, "renewed: idle {idle_ms} ms");
        assert_eq!(deliveries, 1, "delivered once");
    }
    env.sink.stop_dawdling();
    assert_eq!(wait_done(&env, job).await, 1, "one attempt");
    assert_eq!(cut_short(&env, job).await, 0, "no attempt was cut short");
    // Give a redelivery, were there one, the time to show at the sink.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.sink.messages_to("pat@acme.test").len(), 1);
}

/// A long job in a process killed with `kill -9`: nobody renews its claim, and another
/// process takes it over and finishes it, the killed attempt recorded as cut short.
async fn a_long_job_of_a_killed_process_is_taken_over(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let email_id = pending_email(&env, &world).await;
    env.sink.set_dawdle(Duration::from_secs(60));
    let job = env
        .enqueue(request(&SendEmail {
            account_id: world.account,
            email_id,
        }))
        .await
        .id;
    let mut first = Service::start(&env, &SHORT_VISIBILITY, None).await;
    env.sink.wait_for_dawdling(1, Duration::from_secs(30)).await;
    // Held past a renewal, so the takeover is of a claim that was being renewed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.kill();
    env.sink.stop_dawdling();
    let _second = Service::start(&env, &SHORT_VISIBILITY, None).await;
    assert_eq!(
        wait_done(&env, job).await,
        2,
        "taken over: a second attempt"
    );
    assert_eq!(
        cut_short(&env, job).await,
        1,
        "the killed attempt says why it ended"
    );
    assert!(!env.sink.messages_to("pat@acme.test").is_empty());
}

on_both_backends!(
    a_long_job_is_not_redelivered_while_it_runs,
    a_long_job_of_a_killed_process_is_taken_over,
);
