//! The queue drains a large backlog at a steady rate on both transports: the rate over the
//! last stretch of the drain is compared with the rate over an early stretch of the same
//! run (a ratio, not a wall-clock limit).

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestEnv};
use lifecycle::store::ledger;

const BACKLOG: usize = 100_000;
const ENQUEUE_CHUNK: usize = 5_000;

async fn drains_a_100k_backlog_at_a_steady_rate(backend: Backend) {
    let mut env = TestEnv::start_with(backend, |settings| {
        settings.queue.concurrency = 50;
        settings.queue.batch_size = 50;
        settings.database.max_connections = 16;
    })
    .await;
    for _ in 0..BACKLOG / ENQUEUE_CHUNK {
        let chunk = common::noop_requests(ENQUEUE_CHUNK);
        env.app.queue.enqueue_batch(chunk).await.unwrap();
    }
    assert_eq!(
        ledger::count_in_state(env.store(), "queued").await.unwrap(),
        BACKLOG as i64
    );

    env.start_worker();
    let started = Instant::now();
    // (done count, elapsed) samples until everything is done.
    let mut samples: Vec<(i64, Duration)> = Vec::new();
    loop {
        let done = ledger::count_in_state(env.store(), "done").await.unwrap();
        samples.push((done, started.elapsed()));
        if done == BACKLOG as i64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the backlog stopped draining at {done} done"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    env.stop_worker().await;

    let rate_between = |from: f64, to: f64| {
        let at = |fraction: f64| {
            let target = (BACKLOG as f64 * fraction) as i64;
            samples
                .iter()
                .find(|(done, _)| *done >= target)
                .map(|(done, elapsed)| (*done, *elapsed))
                .unwrap()
        };
        let (done_a, time_a) = at(from);
        let (done_b, time_b) = at(to);
        (done_b - done_a) as f64 / (time_b - time_a).as_secs_f64().max(0.001)
    };
    let early = rate_between(0.1, 0.3);
    let late = rate_between(0.7, 0.95);
    let total = samples.last().unwrap().1;
    let timeline: Vec<String> = (1..=10)
        .map(|tenth| {
            let target = BACKLOG as i64 * tenth / 10;
            let (_, at) = samples.iter().find(|(done, _)| *done >= target).unwrap();
            format!("{}%@{:.1}s", tenth * 10, at.as_secs_f64())
        })
        .collect();
    eprintln!("{backend:?} timeline: {}", timeline.join(" "));
    eprintln!(
        "{backend:?}: drained {BACKLOG} in {total:?}: {early:.0} jobs/s at 10-30%, {late:.0} jobs/s at 70-95%"
    );
    assert!(
        late >= early * 0.5,
        "the drain slowed down as the backlog shrank: {early:.0}/s early, {late:.0}/s late"
    );
    assert_eq!(
        ledger::count_in_state(env.store(), "dead").await.unwrap(),
        0
    );
}

on_both_backends!(drains_a_100k_backlog_at_a_steady_rate);
