//! `lifecycle run` as a process: it serves `/healthz`, works the queue, and on SIGTERM
//! stops fetching, finishes what it holds and exits cleanly, leaving nothing claimed; a
//! restart finishes the rest. On both backends.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, TestEnv};
use lifecycle::config::QueueBackend;
use lifecycle::store::ledger;

const JOBS: usize = 3_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The worker process, killed if the test fails before it stops it.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn_worker(env: &TestEnv, port: u16) -> Worker {
    let settings = &env.app.settings;
    let backend = match settings.queue.backend {
        QueueBackend::Database => "database",
        QueueBackend::Redis => "redis",
    };
    Command::new(env!("CARGO_BIN_EXE_lifecycle"))
        .arg("run")
        .env("DATABASE_URL", settings.database.url.expose())
        .env("REDIS_URL", settings.queue.redis_url.expose())
        .env("LIFECYCLE__QUEUE__BACKEND", backend)
        .env("LIFECYCLE__QUEUE__NAMESPACE", &settings.queue.namespace)
        .env("LIFECYCLE__QUEUE__CONCURRENCY", "4")
        .env("LIFECYCLE__QUEUE__BATCH_SIZE", "4")
        .env("LIFECYCLE__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env(
            "RUST_LOG",
            std::env::var("CHILD_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map(Worker)
        .expect("lifecycle run starts")
}

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

fn terminate(worker: &mut Worker) -> std::process::ExitStatus {
    let child = &mut worker.0;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn count(env: &TestEnv, state: &str) -> i64 {
    ledger::count_in_state(env.store(), state).await.unwrap()
}

async fn sigterm_drains_and_a_restart_finishes_the_rest(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let requests = common::noop_requests(JOBS);
    env.app.queue.enqueue_batch(requests).await.unwrap();

    let port = free_port();
    let mut worker = spawn_worker(&env, port);
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
    while count(&env, "done").await < 200 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = terminate(&mut worker);
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let done_at_stop = count(&env, "done").await;
    assert_eq!(count(&env, "running").await, 0, "nothing left claimed");
    assert_eq!(count(&env, "dead").await, 0);
    assert!(
        done_at_stop < JOBS as i64,
        "stopped in the middle ({done_at_stop} done)"
    );

    // A restart finishes the rest; each job exactly once in the ledger.
    let mut worker = spawn_worker(&env, port);
    let restarted = Instant::now();
    while count(&env, "done").await < JOBS as i64 {
        assert!(
            restarted.elapsed() < Duration::from_secs(120),
            "the rest did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(terminate(&mut worker).success());
    assert_eq!(count(&env, "done").await, JOBS as i64);
}

on_both_backends!(sigterm_drains_and_a_restart_finishes_the_rest);
