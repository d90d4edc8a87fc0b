//! Bounded storage: Redis keeps nothing of a finished job, and the ledger deletes finished
//! jobs past the retention, in bounded batches, however many there are. On both backends.
//!
//! `PRUNE_JOBS` sets how many jobs run (default 20,000, for CI); the full-size run is
//! `PRUNE_JOBS=1000000 cargo test --release --test pruning -- --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestEnv, noop_requests};
use lifecycle::store::ledger;

fn job_count() -> usize {
    std::env::var("PRUNE_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

async fn redis_sizes(env: &TestEnv) -> (i64, i64) {
    let namespace = &env.app.settings.queue.namespace;
    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream: i64 = redis::cmd("XLEN")
        .arg(format!("{{lifecycle:{namespace}}}:stream"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let delayed: i64 = redis::cmd("ZCARD")
        .arg(format!("{{lifecycle:{namespace}}}:delayed"))
        .query_async(&mut conn)
        .await
        .unwrap();
    (stream, delayed)
}

async fn finished_jobs_leave_redis_at_once_and_the_ledger_after_the_retention(backend: Backend) {
    let mut env = TestEnv::start_with(backend, |settings| {
        settings.queue.retention_days = 14;
        settings.queue.concurrency = 50;
        settings.queue.batch_size = 100;
    })
    .await;
    let total = job_count();
    let mut requests = noop_requests(total);
    while !requests.is_empty() {
        let batch: Vec<_> = requests.drain(..requests.len().min(5_000)).collect();
        env.app.queue.enqueue_batch(batch).await.unwrap();
    }
    env.start_worker();
    let started = Instant::now();
    while ledger::count_in_state(env.store(), "done").await.unwrap() < total as i64 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the jobs drain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if backend == Backend::PostgresRedis {
        // Acknowledged entries are deleted: nothing of the finished jobs stays in Redis.
        assert_eq!(redis_sizes(&env).await, (0, 0));
    }

    // Within the retention nothing goes.
    env.clock.advance(chrono::Duration::days(13));
    assert_eq!(env.prune(Duration::from_secs(600)).await, 0);
    // A job finished later stays when the first ones are past the retention.
    let late = env.run_job(noop_requests(1).remove(0)).await;
    assert_eq!(late.state, "done");
    env.clock.advance(chrono::Duration::days(2));
    let pruning = Instant::now();
    let pruned = env.prune(Duration::from_secs(600)).await;
    println!(
        "{backend:?}: pruned {pruned} finished jobs in {:?}",
        pruning.elapsed()
    );
    assert_eq!(pruned, total as u64);
    assert_eq!(ledger::count_all(env.store()).await.unwrap(), 1);
    assert_eq!(env.job(late.id).await.state, "done");
}

on_both_backends!(finished_jobs_leave_redis_at_once_and_the_ledger_after_the_retention);
