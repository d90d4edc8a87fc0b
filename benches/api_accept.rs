//! A1, the enqueue API: `POST /v1/jobs/deactivate-user` from 64 keep-alive connections for
//! `A1_SECONDS` (30), each request with its own `Idempotency-Key`, against `lifecycle run
//! --workers 0` (the API alone, production configuration: PostgreSQL ledger, Redis
//! Streams). A 202 means the job is committed to the ledger and pushed to Redis. The load
//! generator is this benchmark itself (tokio, raw HTTP/1.1 over keep-alive connections).
//!
//! The floor, in the same run: `pgbench` inserting one row per transaction from 64 clients
//! for as long, into a table holding the same payload: a durable accept and nothing else.
//!
//! Beside it, the batch route: `POST /v1/jobs` with `A1_BATCH` (100) jobs per request from
//! the same 64 connections, each job with its own key, counted in jobs per second.
//!
//! `cargo bench --bench api_accept`. Prints a table and appends to `benches/results.jsonl`.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Service, Table, percentile, thousands};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNECTIONS: usize = 64;
const TOKEN: &str = "bench-token";
const TARGET_FLOOR_RATIO: f64 = 0.5;
const TARGET_P99_MS: f64 = 20.0;
const PAYLOAD: &str = r#"{"account_id": 1, "user_id": 42, "actor": 7}"#;

/// What each request carries: one job on its own route, or a batch of jobs.
#[derive(Clone, Copy)]
enum Shape {
    Single,
    Batch(usize),
}

impl Shape {
    /// Request `sent` of connection `client`, and the jobs it carries.
    fn request(self, client: usize, sent: u64) -> (String, u64) {
        match self {
            Shape::Single => (
                format!(
                    "POST /v1/jobs/deactivate-user HTTP/1.1\r\nHost: bench\r\n\
                     Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
                     Idempotency-Key: bench-{client}-{sent}\r\n\
                     Content-Length: {}\r\n\r\n{PAYLOAD}",
                    PAYLOAD.len()
                ),
                1,
            ),
            Shape::Batch(size) => {
                let jobs: Vec<String> = (0..size)
                    .map(|n| {
                        format!(
                            r#"{{"kind":"deactivate-user","payload":{PAYLOAD},"idempotency_key":"bench-batch-{client}-{sent}-{n}"}}"#
                        )
                    })
                    .collect();
                let body = format!(r#"{{"jobs":[{}]}}"#, jobs.join(","));
                (
                    format!(
                        "POST /v1/jobs HTTP/1.1\r\nHost: bench\r\n\
                         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\n\r\n{body}",
                        body.len()
                    ),
                    size as u64,
                )
            }
        }
    }
}

/// What the load generator saw.
struct Load {
    /// Requests answered 202.
    accepted: u64,
    /// Jobs those requests carried.
    jobs: u64,
    refused: u64,
    seconds: f64,
    latencies_ms: Vec<f64>,
}

/// `connections` clients posting back to back until `duration` has passed.
async fn load(port: u16, connections: usize, duration: Duration, shape: Shape) -> Load {
    let accepted = Arc::new(AtomicU64::new(0));
    let jobs = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut clients = Vec::new();
    for client in 0..connections {
        let (accepted, refused, jobs) = (accepted.clone(), refused.clone(), jobs.clone());
        clients.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let mut latencies = Vec::new();
            let mut buffer = vec![0u8; 4096];
            let mut sent = 0u64;
            while Instant::now() < deadline {
                sent += 1;
                let (request, carried) = shape.request(client, sent);
                let at = Instant::now();
                stream.write_all(request.as_bytes()).await.expect("send");
                let status = read_response(&mut stream, &mut buffer).await;
                latencies.push(at.elapsed().as_secs_f64() * 1000.0);
                if status == 202 {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    jobs.fetch_add(carried, Ordering::Relaxed);
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut latencies_ms = Vec::new();
    for client in clients {
        latencies_ms.extend(client.await.expect("client"));
    }
    Load {
        accepted: accepted.load(Ordering::Relaxed),
        jobs: jobs.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        latencies_ms,
    }
}

/// Reads one response (head and `Content-Length` body); returns its status.
async fn read_response(stream: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> u16 {
    let mut filled = 0;
    loop {
        if filled == buffer.len() {
            buffer.resize(buffer.len() * 2, 0);
        }
        let read = stream.read(&mut buffer[filled..]).await.expect("receive");
        assert!(read > 0, "the service closed the connection");
        filled += read;
        let Some(head_end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buffer[..head_end]).expect("head");
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("status");
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while filled < head_end + 4 + length {
            if filled == buffer.len() {
                buffer.resize(buffer.len() * 2, 0);
            }
            let read = stream.read(&mut buffer[filled..]).await.expect("receive");
            assert!(read > 0, "the service closed the connection");
            filled += read;
        }
        return status;
    }
}

/// pgbench: one INSERT of the payload per transaction, `clients` clients, `seconds` long.
/// Returns transactions per second.
async fn pgbench_insert_tps(clients: usize, seconds: u64) -> f64 {
    let database = "lifecycle_bench_a1_floor";
    let url = support::fresh_database(database).await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    sqlx::query(
        "CREATE TABLE accepted (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                idempotency_key TEXT UNIQUE, payload TEXT NOT NULL,
                                created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(&pool)
    .await
    .expect("floor table");
    pool.close().await;
    let script = std::env::temp_dir().join("lifecycle-a1-insert.sql");
    std::fs::write(
        &script,
        format!(
            "\\set key random(1, 1000000000000)\n\
             INSERT INTO accepted (idempotency_key, payload) \
             VALUES ('bench-' || :client_id || '-' || :key, '{PAYLOAD}');\n"
        ),
    )
    .expect("write the pgbench script");
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
        ])
        .arg("-f")
        .arg(&script)
        .arg(&url)
        .output()
        .expect("pgbench (Debian package postgresql-contrib or postgresql) must be installed");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    support::drop_database(database).await;
    text.lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("cannot read pgbench's output: {text}"))
}

#[tokio::main]
async fn main() {
    let seconds: u64 = support::env_or("A1_SECONDS", 30);
    let database = "lifecycle_bench_a1";
    let url = support::fresh_database(database).await;
    let namespace = format!("bench-a1-{}", uuid::Uuid::new_v4().simple());
    // Migrates the database; the service then finds it ready.
    let app = support::app(support::production_settings(&url, &namespace)).await;
    let mut vars = support::production_vars(&url, &namespace);
    vars.push(("LIFECYCLE__HTTP__API_TOKENS", TOKEN.to_string()));
    let mut service = Service::start(
        &["--workers", "0", "--config", "config/production.toml"],
        &vars,
        None,
    )
    .await;

    let batch_size: usize = support::env_or("A1_BATCH", 100);
    eprintln!("warming up");
    load(
        service.port,
        CONNECTIONS,
        Duration::from_secs(2),
        Shape::Single,
    )
    .await;
    eprintln!("API: {CONNECTIONS} connections for {seconds} s");
    let profile = support::Profile::start();
    let mut api = load(
        service.port,
        CONNECTIONS,
        Duration::from_secs(seconds),
        Shape::Single,
    )
    .await;
    drop(profile);
    eprintln!("API, batches of {batch_size}: {CONNECTIONS} connections for {seconds} s");
    let mut batch = load(
        service.port,
        CONNECTIONS,
        Duration::from_secs(seconds),
        Shape::Batch(batch_size),
    )
    .await;
    let rss_mib = service.peak_rss_kib() as f64 / 1024.0;
    service.terminate();
    let recorded = lifecycle::store::ledger::count_all(&app.store)
        .await
        .expect("count");
    app.store.close().await;
    support::forget_namespace(&namespace).await;
    support::drop_database(database).await;
    assert_eq!(api.refused + batch.refused, 0, "every request accepted");
    assert!(
        recorded as u64 >= api.jobs + batch.jobs,
        "every accepted job is in the ledger"
    );

    eprintln!("floor: pgbench, {CONNECTIONS} clients for {seconds} s");
    let floor_tps = pgbench_insert_tps(CONNECTIONS, seconds).await;

    let rate = api.accepted as f64 / api.seconds;
    let p50 = percentile(&mut api.latencies_ms, 0.5);
    let p99 = percentile(&mut api.latencies_ms, 0.99);
    let ratio = rate / floor_tps;
    let batch_rate = batch.jobs as f64 / batch.seconds;
    let batch_p50 = percentile(&mut batch.latencies_ms, 0.5);
    let batch_p99 = percentile(&mut batch.latencies_ms, 0.99);
    let mut table = Table::new(
        &format!("A1 POST /v1/jobs/deactivate-user, {CONNECTIONS} connections, {seconds} s"),
        &["figure", "jobs/s", "p50 ms", "p99 ms", "x floor"],
    );
    table.row(vec![
        "pgbench: one-row INSERT per transaction, 64 clients (floor)".into(),
        thousands(floor_tps),
        "".into(),
        "".into(),
        "1.00".into(),
    ]);
    table.row(vec![
        "POST /v1/jobs/deactivate-user -> 202 (ledger + Redis)".into(),
        thousands(rate),
        format!("{p50:.2}"),
        format!("{p99:.2}"),
        format!("{ratio:.2}"),
    ]);
    table.row(vec![
        format!("POST /v1/jobs, {batch_size} jobs per request -> 202 (ledger + Redis)"),
        thousands(batch_rate),
        format!("{batch_p50:.2}"),
        format!("{batch_p99:.2}"),
        format!("{:.2}", batch_rate / floor_tps),
    ]);
    table.print();
    let mut verdict = Table::new(
        "A1 against its targets",
        &["figure", "measured", "target", "met"],
    );
    let met = |ok: bool| if ok { "yes" } else { "NO" }.to_string();
    verdict.row(vec![
        "API rate / pgbench INSERT rate".into(),
        format!("{ratio:.2}"),
        format!(">= {TARGET_FLOOR_RATIO}"),
        met(ratio >= TARGET_FLOOR_RATIO),
    ]);
    verdict.row(vec![
        "p99 latency, ms".into(),
        format!("{p99:.2}"),
        format!("< {TARGET_P99_MS}"),
        met(p99 < TARGET_P99_MS),
    ]);
    verdict.print();
    support::record(
        "A1 API accept",
        serde_json::json!({
            "connections": CONNECTIONS,
            "seconds": seconds,
            "requests_per_sec": rate.round(),
            "p50_ms": (p50 * 100.0).round() / 100.0,
            "p99_ms": (p99 * 100.0).round() / 100.0,
            "pgbench_insert_tps": floor_tps.round(),
            "ratio": (ratio * 100.0).round() / 100.0,
            "batch_size": batch_size,
            "batch_jobs_per_sec": batch_rate.round(),
            "batch_p50_ms": (batch_p50 * 100.0).round() / 100.0,
            "batch_p99_ms": (batch_p99 * 100.0).round() / 100.0,
            "service_peak_rss_mib": (rss_mib * 10.0).round() / 10.0,
            "target_met": ratio >= TARGET_FLOOR_RATIO && p99 < TARGET_P99_MS,
        }),
    );
}
