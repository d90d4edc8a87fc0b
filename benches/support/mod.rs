//! What every benchmark shares: a fresh database and Redis namespace, `lifecycle run` as a
//! child process, the floors measured by the servers' own tools (redis-benchmark, pgbench),
//! percentiles, the printed table and the machine-readable result file.
//!
//! Each benchmark measures its floor in the same run, so what it reports is a ratio that
//! holds on a noisy machine, not an absolute time.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifecycle::App;
use lifecycle::clock::Clock;
use lifecycle::config::{QueueBackend, Secret, Settings};
use sqlx::Connection;

pub mod admin_http;
pub mod cli;
pub mod idle_users;
pub mod idle_users_sqlite;
pub mod job_ledger;
pub mod statement_log;

/// The PostgreSQL server the benchmarks use: `BENCH_DATABASE_URL`, else the tests' URL.
pub fn postgres_url() -> String {
    std::env::var("BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

pub fn redis_url() -> String {
    std::env::var("BENCH_REDIS_URL")
        .or_else(|_| std::env::var("TEST_REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// `url` with its database name replaced.
pub fn database_url(name: &str) -> String {
    let url = postgres_url();
    let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

/// Runs `sql` (statements about databases: names are ours, never input) on the server's
/// own database.
pub async fn admin_sql(sql: String) -> Result<(), sqlx::Error> {
    let mut admin = sqlx::PgConnection::connect(&postgres_url()).await?;
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut admin)
        .await
        .map(|_| ());
    admin.close().await.ok();
    result
}

/// An empty database `name` (dropped first if a previous run left it).
pub async fn fresh_database(name: &str) -> String {
    // One statement each: several in one message would run as one transaction, which
    // DROP and CREATE DATABASE refuse.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin_sql(sql)
            .await
            .expect("PostgreSQL must answer at BENCH_DATABASE_URL / TEST_DATABASE_URL");
    }
    database_url(name)
}

pub async fn drop_database(name: &str) {
    let _ = admin_sql(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}

/// The production setup: PostgreSQL store and ledger, Redis Streams transport, under
/// `namespace`.
pub fn production_settings(database_url: &str, namespace: &str) -> Settings {
    let mut settings = Settings::load(None).expect("default settings load");
    settings.database.url = Secret::new(database_url.to_string());
    settings.queue.backend = QueueBackend::Redis;
    settings.queue.redis_url = Secret::new(redis_url());
    settings.queue.namespace = namespace.to_string();
    settings.queue.events_stream = format!("{{lifecycle:{namespace}}}:events");
    unschedule_sweeps(&mut settings);
    settings
}

/// The benchmarks measure the queue and the jobs they enqueue: no sweep fires among them.
pub fn unschedule_sweeps(settings: &mut Settings) {
    lifecycle::schedule::unschedule_all(&mut settings.schedule);
}

/// The variables that point `lifecycle run --config config/production.toml` at the
/// benchmark's database and queue namespace.
pub fn production_vars(database_url: &str, namespace: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url.to_string()),
        ("REDIS_URL", redis_url()),
        // No benchmark sends mail; the transport still needs a URL to be built.
        ("SMTP_URL", "smtp://127.0.0.1:2525".to_string()),
        ("LIFECYCLE__QUEUE__NAMESPACE", namespace.to_string()),
        (
            "LIFECYCLE__QUEUE__EVENTS_STREAM",
            format!("{{lifecycle:{namespace}}}:events"),
        ),
    ]
}

/// The bench process's own connection to the service's database and queue (to enqueue and
/// to seed), with the system clock.
pub async fn app(settings: Settings) -> Arc<App> {
    App::start(settings, Clock::System)
        .await
        .unwrap_or_else(|error| panic!("the benchmark's backends must be reachable: {error}"))
}

/// Deletes every key of a queue namespace (and its events stream).
pub async fn forget_namespace(namespace: &str) {
    let client = redis::Client::open(redis_url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis must answer");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{lifecycle:{namespace}}}*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap_or(());
    }
}

/// `lifecycle run` as a child process (the release build `cargo bench` made).
pub struct Service {
    pub child: Child,
    pub port: u16,
}

impl Service {
    /// Starts `lifecycle run <args>` with `vars` (over the embedded defaults); waits until its
    /// HTTP port answers. Its output is discarded unless `BENCH_CHILD_LOG` names a file.
    pub async fn start(args: &[&str], vars: &[(&str, String)], cwd: Option<&Path>) -> Service {
        let port = free_port();
        let log = std::env::var("BENCH_CHILD_LOG").ok();
        let output = || match &log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("child log file"),
            ),
            None => Stdio::null(),
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_lifecycle"));
        command
            .arg("run")
            .args(args)
            .env_remove("LIFECYCLE_ENV")
            .env_remove("RUST_LOG")
            .env("LIFECYCLE__HTTP__BIND", format!("127.0.0.1:{port}"))
            .stdout(output())
            .stderr(output());
        // No sweep fires among the jobs measured (a benchmark's vars may schedule one).
        for sweep in lifecycle::schedule::SWEEPS {
            command.env(
                format!("LIFECYCLE__SCHEDULE__{}__CRON", sweep.name.to_uppercase()),
                "",
            );
        }
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        } else {
            command.current_dir(env!("CARGO_MANIFEST_DIR"));
        }
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("lifecycle run starts");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the service did not start"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "the service exited (BENCH_CHILD_LOG=<file> keeps its log)"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Service { child, port }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now, KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS")
    }

    /// The most resident memory the process ever had, KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM")
    }

    /// SIGTERM, then waits for it to exit.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// With `BENCH_PERF=<file>`: `perf record` of the whole machine (every process, call
/// graphs) from `start` until dropped, into that file; nothing otherwise.
pub struct Profile(Option<Child>);

impl Profile {
    pub fn start() -> Self {
        let Some(path) = std::env::var_os("BENCH_PERF") else {
            return Self(None);
        };
        let child = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "999", "-a", "-g", "-o"])
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("perf (Debian package linux-perf) must be installed for BENCH_PERF");
        // perf needs a moment before it samples.
        std::thread::sleep(Duration::from_millis(300));
        Self(Some(child))
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// `redis-benchmark -t lpush -n 200000 -q` against the benchmarks' Redis: unpipelined
/// LPUSH operations per second.
pub fn redis_lpush_rate() -> f64 {
    let (host, port) = redis_host_port();
    let output = Command::new("redis-benchmark")
        .args([
            "-h", &host, "-p", &port, "-t", "lpush", "-n", "200000", "-q",
        ])
        .output()
        .expect("redis-benchmark (Debian package redis-tools) must be installed");
    let text = String::from_utf8_lossy(&output.stdout);
    // "LPUSH: 83333.33 requests per second, p50=0.303 msec"; with a terminal it also
    // prints progress lines separated by '\r'.
    text.split(['\r', '\n'])
        .filter_map(|line| line.strip_prefix("LPUSH: "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .next_back()
        .unwrap_or_else(|| panic!("cannot read redis-benchmark's output: {text}"))
}

fn redis_host_port() -> (String, String) {
    let url = redis_url();
    let rest = url.trim_start_matches("redis://");
    let host_port = rest.split('/').next().unwrap_or("127.0.0.1:6379");
    let host_port = host_port.rsplit('@').next().unwrap_or(host_port);
    match host_port.rsplit_once(':') {
        Some((host, port)) => (host.to_string(), port.to_string()),
        None => (host_port.to_string(), "6379".to_string()),
    }
}

/// The value at `fraction` (0.5: median, 0.99: p99) of `values`, which it sorts.
pub fn percentile(values: &mut [f64], fraction: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((values.len() as f64) * fraction).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

pub fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    percentile(&mut values, 0.5)
}

/// A table printed on stdout, one row per figure.
pub struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: &str, header: &[&str]) -> Self {
        Self {
            title: title.to_string(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let columns = self.header.len();
        let width = |column: usize| {
            self.rows
                .iter()
                .map(|row| row.get(column).map_or(0, |cell| cell.chars().count()))
                .chain([self.header[column].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        println!("\n{}\n", self.title);
        println!("{}", line(&self.header));
        let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
        println!("{}", line(&rule));
        for row in &self.rows {
            println!("{}", line(row));
        }
        println!();
    }
}

/// The machine a result was measured on.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown".to_string(), |(_, model)| model.trim().to_string());
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let version = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .ok()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
            .unwrap_or_default()
    };
    serde_json::json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory_gib": (memory_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "postgres": version("psql", "--version"),
        "redis": version("redis-server", "--version"),
    })
}

/// The file each run appends its results to, one JSON object per line.
pub fn results_file() -> PathBuf {
    std::env::var_os("BENCH_RESULTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results.jsonl"),
        PathBuf::from,
    )
}

/// Appends one result: the benchmark, what it measured, with the date, commit and machine.
pub fn record(bench: &str, result: serde_json::Value) {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_default();
    let line = serde_json::json!({
        "bench": bench,
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "commit": commit,
        "machine": machine(),
        "result": result,
    });
    let path = results_file();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()));
    writeln!(file, "{line}").expect("append the result");
    println!("result appended to {}", path.display());
}

/// An environment variable as a number, else `default`: lets a run be made shorter or
/// longer without editing the benchmark.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Formats a rate with thousands separators: 25,431.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
