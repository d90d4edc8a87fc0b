//! Q2, enqueue-to-start latency: one `lifecycle run` (production configuration: PostgreSQL
//! ledger, Redis Streams) idles; a producer enqueues one no-op job every 10 ms (100 jobs/s)
//! through the library, as a Rust service would, for `Q2_SECONDS` (30). For each job the
//! ledger gives when it was enqueued (`created_at_ms`, stamped before its row is written),
//! when a worker claimed it to start it (`locked_at_ms`) and when its outcome was recorded
//! (`finished_at_ms`, after it ran: an upper bound of its start).
//!
//! `cargo bench --bench enqueue_latency`. Prints a table and appends to
//! `benches/results.jsonl`.

mod support;

use std::time::{Duration, Instant};

use lifecycle::queue::EnqueueRequest;
use lifecycle::store::{Store, ledger};
use lifecycle_jobs::{Job, Noop};
use support::{Service, Table, percentile};

const RATE_PER_SEC: u64 = 100;
const TARGET_P99_MS: f64 = 50.0;

#[tokio::main]
async fn main() {
    let seconds: u64 = support::env_or("Q2_SECONDS", 30);
    let database = "lifecycle_bench_q2";
    let url = support::fresh_database(database).await;
    let namespace = format!("bench-q2-{}", uuid::Uuid::new_v4().simple());
    let app = support::app(support::production_settings(&url, &namespace)).await;
    let mut service = Service::start(
        &["--config", "config/production.toml"],
        &support::production_vars(&url, &namespace),
        None,
    )
    .await;
    // Let the worker settle into its idle loop (blocked on the stream).
    tokio::time::sleep(Duration::from_secs(2)).await;

    let payload = serde_json::to_string(&Noop { account_id: 1 }).expect("encode");
    let total = seconds * RATE_PER_SEC;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SEC));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut call_ms = Vec::with_capacity(total as usize);
    for _ in 0..total {
        ticker.tick().await;
        let called = Instant::now();
        app.queue
            .enqueue(EnqueueRequest {
                kind: Noop::NAME,
                account_id: Some(1),
                payload: payload.clone(),
                idempotency_key: None,
                run_at_ms: None,
            })
            .await
            .expect("enqueue");
        call_ms.push(called.elapsed().as_secs_f64() * 1000.0);
    }
    let achieved_rate = total as f64 / started.elapsed().as_secs_f64();

    // Wait until every job is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ledger::count_in_state(&app.store, "done")
        .await
        .expect("count")
        < total as i64
    {
        assert!(Instant::now() < deadline, "jobs left undone");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_mib = service.peak_rss_kib() as f64 / 1024.0;
    service.terminate();

    let Store::Postgres(pool) = &app.store else {
        unreachable!("production settings")
    };
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT created_at_ms, locked_at_ms, finished_at_ms FROM jobs WHERE state = 'done'",
    )
    .fetch_all(pool)
    .await
    .expect("read the ledger");
    let mut to_start: Vec<f64> = rows.iter().map(|(c, l, _)| (l - c) as f64).collect();
    let mut to_finish: Vec<f64> = rows.iter().map(|(c, _, f)| (f - c) as f64).collect();
    app.store.close().await;
    support::forget_namespace(&namespace).await;
    support::drop_database(database).await;

    let mut table = Table::new(
        &format!(
            "Q2 enqueue-to-start latency: {total} no-op jobs at {achieved_rate:.0} jobs/s, \
             one idle worker process (ledger times, 1 ms resolution)"
        ),
        &["figure", "p50 ms", "p90 ms", "p99 ms", "max ms"],
    );
    let mut row = |name: &str, values: &mut Vec<f64>| {
        let cells = [0.5, 0.9, 0.99, 1.0].map(|p| percentile(values, p));
        table.row(vec![
            name.to_string(),
            format!("{:.1}", cells[0]),
            format!("{:.1}", cells[1]),
            format!("{:.1}", cells[2]),
            format!("{:.1}", cells[3]),
        ]);
        cells
    };
    let start = row("enqueue -> claimed by a worker (start)", &mut to_start);
    let finish = row("enqueue -> outcome recorded (after it ran)", &mut to_finish);
    let call = row("the enqueue call itself (producer side)", &mut call_ms);
    table.print();

    let mut verdict = Table::new(
        "Q2 against its target",
        &["figure", "measured", "target", "met"],
    );
    verdict.row(vec![
        "p99 enqueue -> start, ms".into(),
        format!("{:.1}", start[2]),
        format!("< {TARGET_P99_MS}"),
        if start[2] < TARGET_P99_MS {
            "yes"
        } else {
            "NO"
        }
        .into(),
    ]);
    verdict.print();

    support::record(
        "Q2 enqueue latency",
        serde_json::json!({
            "jobs": total,
            "rate_per_sec": achieved_rate.round(),
            "to_start_ms": {"p50": start[0], "p90": start[1], "p99": start[2], "max": start[3]},
            "to_finish_ms": {"p50": finish[0], "p90": finish[1], "p99": finish[2], "max": finish[3]},
            "enqueue_call_ms": {"p50": call[0], "p90": call[1], "p99": call[2], "max": call[3]},
            "worker_peak_rss_mib": (rss_mib * 10.0).round() / 10.0,
            "target_met": start[2] < TARGET_P99_MS,
        }),
    );
}
