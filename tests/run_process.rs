//! `lifecycle run` as a process: it serves `/healthz`, works the queue, and on SIGTERM
//! stops fetching, finishes what it holds and exits cleanly, leaving nothing claimed; a
//! restart finishes the rest. On both backends.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::process::Service;
use common::{Backend, TestEnv};
use lifecycle::store::ledger;

/// Enough that the SIGTERM, sent once the first 100 are done, lands in the middle even on
/// a loaded machine: the worker runs thousands of no-ops a second.
const JOBS: usize = 10_000;

/// Few jobs in hand at once, so a SIGTERM lands in the middle of the run.
const SMALL_BATCHES: [(&str, &str); 2] = [
    ("LIFECYCLE__QUEUE__CONCURRENCY", "4"),
    ("LIFECYCLE__QUEUE__BATCH_SIZE", "4"),
];

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

async fn count(env: &TestEnv, state: &str) -> i64 {
    ledger::count_in_state(env.store(), state).await.unwrap()
}

async fn sigterm_drains_and_a_restart_finishes_the_rest(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let requests = common::noop_requests(JOBS);
    env.app.queue.enqueue_batch(requests).await.unwrap();

    let mut worker = Service::start(&env, &SMALL_BATCHES, None).await;
    let port = worker.port;
    let started = Instant::now();
    let health = loop {
        if let Some(response) = http_get(port, "/healthz") {
            break response;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no /healthz");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok"), "{health}");
    let ready = http_get(port, "/readyz").unwrap();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");

    // Some work done, then SIGTERM in the middle of the run.
    while count(&env, "done").await < 100 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = worker.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let done_at_stop = count(&env, "done").await;
    assert_eq!(count(&env, "running").await, 0, "nothing left claimed");
    assert_eq!(count(&env, "dead").await, 0);
    assert!(
        done_at_stop < JOBS as i64,
        "stopped in the middle ({done_at_stop} done)"
    );

    // A restart finishes the rest; each job exactly once in the ledger.
    let mut worker = Service::start(&env, &SMALL_BATCHES, None).await;
    let restarted = Instant::now();
    while count(&env, "done").await < JOBS as i64 {
        assert!(
            restarted.elapsed() < Duration::from_secs(120),
            "the rest did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(worker.terminate().success());
    assert_eq!(count(&env, "done").await, JOBS as i64);
}

/// `run --workers 0` accepts jobs over HTTP and runs none: they stay queued, recorded (and
/// pushed) for the processes with workers, which run them.
async fn workers_0_serves_the_api_alone(backend: Backend) {
    let env = TestEnv::start(backend).await;
    // A public kind that runs to `done` (the no-op is internal, not enqueued over HTTP).
    let world = common::seed_world(&env, 1).await;
    let activity = serde_json::json!({
        "account_id": world.account, "user_id": world.admin, "source": "api"
    })
    .to_string();
    let token = [("LIFECYCLE__HTTP__API_TOKENS", "api-only-token")];
    let mut api = Service::start_with_args(&env, &["--workers", "0"], &token, None).await;
    let headers = [
        ("Authorization", "Bearer api-only-token"),
        ("Content-Type", "application/json"),
    ];
    for _ in 0..5 {
        let answer = common::http_client::request(
            api.port,
            "POST",
            "/v1/jobs/record-activity",
            &headers,
            activity.as_bytes(),
        )
        .await;
        assert_eq!(answer.status, 202, "{answer:?}");
        assert!(answer.json()["job_id"].is_string(), "{answer:?}");
    }
    // Well past a worker's poll interval: nothing was claimed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&env, "queued").await, 5);
    assert_eq!(count(&env, "running").await + count(&env, "done").await, 0);
    assert!(api.terminate().success());

    let mut worker = Service::start(&env, &[], None).await;
    let started = Instant::now();
    while count(&env, "done").await < 5 {
        assert!(started.elapsed() < Duration::from_secs(30), "not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(worker.terminate().success());
}

/// A SIGTERM the moment the service is up (its port just opened) is a clean stop, with
/// and without workers: the handler is installed before start-up, not after it.
async fn sigterm_right_after_start_is_a_clean_stop(backend: Backend) {
    let env = TestEnv::start(backend).await;
    for args in [&[][..], &["--workers", "0"][..], &["--workers", "3"][..]] {
        let mut service = Service::start_with_args(&env, args, &[], None).await;
        let status = service.terminate();
        assert!(
            status.success(),
            "{args:?}: clean exit on SIGTERM: {status:?}"
        );
    }
}

on_both_backends!(
    sigterm_right_after_start_is_a_clean_stop,
    sigterm_drains_and_a_restart_finishes_the_rest,
    workers_0_serves_the_api_alone
);
