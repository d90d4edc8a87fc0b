//! S1, the idle-lock sweep: LockIdleUsers over `S1_USERS` (1,000,000) users across
//! `S1_ACCOUNTS` (1,000) accounts, `S1_IDLE` (100,000) of them idle past the 90 days, run by
//! the real service (`lifecycle run` on the production configuration: PostgreSQL and Redis)
//! and enqueued as an operator does (`lifecycle sweep lock-idle`), against the set-based
//! statements that make the same changes on an identical copy (the floor), in the same run.
//! The mail kind is paused during the run (`lifecycle jobs pause mail::send`) so the
//! follow-up emails do not compete with the sweep. The service's RSS is sampled every
//! 100 ms; each size of `S1_SIZES` (default: a tenth of S1_USERS, then S1_USERS) is a run,
//! so the peak is seen to stay flat. Then the same sweep on the embedded default (SQLite)
//! at `S1_SQLITE_USERS` (S1_USERS).
//!
//! `cargo bench --bench sweep_lock_idle`. Prints a table and appends to
//! `benches/results.jsonl`.

mod support;

use std::time::Duration;

use support::idle_users::{self, Population, SweepRun, sweep_through_service};
use support::idle_users_sqlite;
use support::{Service, Table};

const TARGET_RATIO: f64 = 1.5;
const TARGET_RSS_MIB: f64 = 64.0;
const DATABASE: &str = "lifecycle_bench_s1";
const BARE: &str = "lifecycle_bench_s1_bare";

struct PostgresRun {
    population: Population,
    fill: Duration,
    sweep: SweepRun,
    bare: Vec<(&'static str, Duration)>,
    /// With the statement log on: the sweep's statements, costliest first.
    statements: Vec<support::statement_log::Share>,
}

impl PostgresRun {
    fn bare_total(&self) -> Duration {
        self.bare.iter().map(|(_, took)| *took).sum()
    }

    fn ratio(&self) -> f64 {
        self.sweep.ledger_wall.as_secs_f64() / self.bare_total().as_secs_f64()
    }
}

async fn postgres_run(population: Population, log_statements: bool) -> PostgresRun {
    let namespace = format!("bench-s1-{}", uuid::Uuid::new_v4().simple());
    let url = support::fresh_database(DATABASE).await;
    let app = support::app(support::production_settings(&url, &namespace)).await;
    app.store.close().await;
    drop(app);
    eprintln!("S1 PostgreSQL: filling {population:?}");
    let fill = idle_users::fill_postgres(&url, population).await;
    support::drop_database(BARE).await;
    support::admin_sql(format!("CREATE DATABASE {BARE} TEMPLATE {DATABASE}"))
        .await
        .expect("copy the filled database");

    let log_offset = if log_statements {
        Some(support::statement_log::start(DATABASE).await)
    } else {
        None
    };
    let vars = support::production_vars(&url, &namespace);
    let config = ["--config", "config/production.toml"];
    let mut service = Service::start(&config, &vars, None).await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    eprintln!("S1 PostgreSQL: the sweep through the service");
    let sweep = sweep_through_service(&service, &vars, None, &config, async |job| {
        sqlx::query_as("SELECT state, created_at_ms, finished_at_ms FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_optional(&pool)
            .await
            .expect("ledger")
            .unwrap_or(("absent".into(), None, None))
    })
    .await;
    service.terminate();
    pool.close().await;
    let statements = log_offset.map_or_else(Vec::new, |offset| {
        support::statement_log::shares(DATABASE, offset)
    });
    idle_users::outcome_postgres(&url)
        .await
        .assert_locked_once(population, "the sweep");

    eprintln!("S1 PostgreSQL: the bare statements on the copy");
    let bare_url = support::database_url(BARE);
    let bare = idle_users::bare_lock_idle_postgres(&bare_url).await;
    idle_users::outcome_postgres(&bare_url)
        .await
        .assert_locked_once(population, "the bare statements");
    support::drop_database(BARE).await;
    support::drop_database(DATABASE).await;
    support::forget_namespace(&namespace).await;
    PostgresRun {
        population,
        fill,
        sweep,
        bare,
        statements,
    }
}

/// The same sweep on the embedded default (SQLite file, mail as files) in a fresh folder,
/// and the bare statements on a copy of the filled file.
struct SqliteRun {
    fill: Duration,
    sweep: SweepRun,
    bare: Vec<(&'static str, Duration)>,
}

impl SqliteRun {
    fn bare_total(&self) -> Duration {
        self.bare.iter().map(|(_, took)| *took).sum()
    }
}

async fn sqlite_run(population: Population) -> SqliteRun {
    let folder = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(folder.path().join("var")).expect("var folder");
    support::cli::lifecycle(&["migrate"], &[], Some(folder.path()), None);
    let file = folder.path().join("var/lifecycle.db");
    eprintln!("S1 SQLite: filling {population:?}");
    let fill = idle_users_sqlite::fill(&file, population).await;
    let copy = folder.path().join("bare.db");
    std::fs::copy(&file, &copy).expect("copy the filled file");
    let service = Service::start(&[], &[], Some(folder.path())).await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", file.display()))
        .await
        .expect("open");
    eprintln!("S1 SQLite: the sweep through the service");
    let sweep = sweep_through_service(&service, &[], Some(folder.path()), &[], async |job| {
        sqlx::query_as("SELECT state, created_at_ms, finished_at_ms FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_optional(&pool)
            .await
            .expect("ledger")
            .unwrap_or(("absent".into(), None, None))
    })
    .await;
    drop(service);
    pool.close().await;
    idle_users_sqlite::outcome_of(&file)
        .await
        .assert_locked_once(population, "the SQLite sweep");
    eprintln!("S1 SQLite: the bare statements on the copy");
    let bare = idle_users_sqlite::bare_lock_idle(&copy).await;
    idle_users_sqlite::outcome_of(&copy)
        .await
        .assert_locked_once(population, "the bare SQLite statements");
    SqliteRun { fill, sweep, bare }
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

#[tokio::main]
async fn main() {
    let users: i64 = support::env_or("S1_USERS", 1_000_000);
    let idle: i64 = support::env_or("S1_IDLE", users / 10);
    let accounts: i64 = support::env_or("S1_ACCOUNTS", 1_000);
    let sqlite_users: i64 = support::env_or("S1_SQLITE_USERS", users);
    let sizes: Vec<i64> = std::env::var("S1_SIZES")
        .unwrap_or_else(|_| format!("{},{users}", users / 10))
        .split(',')
        .map(|size| {
            size.trim()
                .parse()
                .expect("S1_SIZES: user counts, comma-separated")
        })
        .collect();
    // Each size keeps the share of idle users and the accounts.
    let at_size = |size: i64| {
        Population {
            users: size,
            idle: idle * size / users / accounts * accounts,
            accounts,
        }
        .checked()
    };
    let load_before = support::cli::load_average();
    let mut runs = Vec::new();
    for size in &sizes {
        runs.push(postgres_run(at_size(*size), false).await);
    }
    // Where the sweep's database time goes, on a run of its own (logging every statement
    // slows it, so its times are not the figures).
    let profile_users: i64 = support::env_or("S1_STATEMENT_LOG_USERS", 0);
    if profile_users > 0 {
        let profiled = postgres_run(at_size(profile_users), true).await;
        support::statement_log::print(
            &format!(
                "S1 the sweep's statements at {} users (sweep {:.1} s)",
                support::thousands(profile_users as f64),
                profiled.sweep.ledger_wall.as_secs_f64()
            ),
            &profiled.statements,
        );
    }
    let sqlite_population = at_size(sqlite_users);
    let sqlite = sqlite_run(sqlite_population).await;
    let sqlite_ratio = sqlite.sweep.ledger_wall.as_secs_f64() / sqlite.bare_total().as_secs_f64();
    let load_after = support::cli::load_average();

    let mut table = Table::new(
        &format!(
            "S1 LockIdleUsers, {accounts} accounts, idle users {:.0}% (mail paused); \
             load average before {load_before}, after {load_after}",
            100.0 * idle as f64 / users as f64
        ),
        &[
            "backend",
            "users",
            "idle",
            "fill s",
            "sweep s (ledger)",
            "sweep s (seen)",
            "bare s",
            "sweep / bare",
            "RSS before MiB",
            "peak sampled MiB",
            "VmHWM MiB",
        ],
    );
    for run in &runs {
        table.row(vec![
            "PostgreSQL + Redis".into(),
            support::thousands(run.population.users as f64),
            support::thousands(run.population.idle as f64),
            format!("{:.1}", run.fill.as_secs_f64()),
            format!("{:.2}", run.sweep.ledger_wall.as_secs_f64()),
            format!("{:.2}", run.sweep.observed_wall.as_secs_f64()),
            format!("{:.2}", run.bare_total().as_secs_f64()),
            format!("{:.2}", run.ratio()),
            format!("{:.1}", mib(run.sweep.rss_before_kib)),
            format!("{:.1}", mib(run.sweep.peak_sampled_kib)),
            format!("{:.1}", mib(run.sweep.peak_hwm_kib)),
        ]);
    }
    table.row(vec![
        "SQLite (embedded)".into(),
        support::thousands(sqlite_population.users as f64),
        support::thousands(sqlite_population.idle as f64),
        format!("{:.1}", sqlite.fill.as_secs_f64()),
        format!("{:.2}", sqlite.sweep.ledger_wall.as_secs_f64()),
        format!("{:.2}", sqlite.sweep.observed_wall.as_secs_f64()),
        format!("{:.2}", sqlite.bare_total().as_secs_f64()),
        format!("{sqlite_ratio:.2}"),
        format!("{:.1}", mib(sqlite.sweep.rss_before_kib)),
        format!("{:.1}", mib(sqlite.sweep.peak_sampled_kib)),
        format!("{:.1}", mib(sqlite.sweep.peak_hwm_kib)),
    ]);
    table.print();

    let largest = runs.last().expect("at least one size");
    let mut floor = Table::new(
        &format!(
            "S1 floor: the bare statements at {} users, one transaction",
            support::thousands(largest.population.users as f64)
        ),
        &["statement", "ms"],
    );
    for (name, took) in &largest.bare {
        floor.row(vec![
            name.to_string(),
            format!("{:.1}", took.as_secs_f64() * 1000.0),
        ]);
    }
    floor.print();

    let ratio = largest.ratio();
    let peaks: Vec<f64> = runs
        .iter()
        .map(|run| mib(run.sweep.peak_sampled_kib))
        .collect();
    let highest = peaks.iter().copied().fold(0.0, f64::max);
    let flat = peaks.iter().copied().fold(f64::MAX, f64::min) * 1.25 >= highest;
    let mut verdict = Table::new(
        "S1 against its targets",
        &["figure", "measured", "target", "met"],
    );
    let yes = |met: bool| if met { "yes" } else { "NO" }.to_string();
    verdict.row(vec![
        "sweep / bare (largest size)".into(),
        format!("{ratio:.2}"),
        format!("<= {TARGET_RATIO}"),
        yes(ratio <= TARGET_RATIO),
    ]);
    verdict.row(vec![
        "peak RSS sampled, MiB".into(),
        format!("{highest:.1}"),
        format!("< {TARGET_RSS_MIB}"),
        yes(highest < TARGET_RSS_MIB),
    ]);
    verdict.row(vec![
        "peak RSS flat across sizes (largest within 1.25x of smallest)".into(),
        format!("{peaks:?}"),
        "flat".into(),
        yes(flat),
    ]);
    verdict.print();

    let run_json = |run: &PostgresRun| {
        serde_json::json!({
            "users": run.population.users,
            "idle": run.population.idle,
            "accounts": run.population.accounts,
            "fill_s": run.fill.as_secs_f64(),
            "sweep_ledger_s": run.sweep.ledger_wall.as_secs_f64(),
            "sweep_seen_s": run.sweep.observed_wall.as_secs_f64(),
            "bare_s": run.bare_total().as_secs_f64(),
            "bare_statements_ms": run.bare.iter().map(|(name, took)| serde_json::json!({
                "statement": name, "ms": took.as_secs_f64() * 1000.0 })).collect::<Vec<_>>(),
            "ratio": (run.ratio() * 100.0).round() / 100.0,
            "rss_before_mib": mib(run.sweep.rss_before_kib),
            "peak_sampled_mib": mib(run.sweep.peak_sampled_kib),
            "vmhwm_mib": mib(run.sweep.peak_hwm_kib),
        })
    };
    support::record(
        "S1 sweep lock idle",
        serde_json::json!({
            "mail_paused": true,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "postgres": runs.iter().map(run_json).collect::<Vec<_>>(),
            "sqlite": {
                "users": sqlite_population.users,
                "idle": sqlite_population.idle,
                "fill_s": sqlite.fill.as_secs_f64(),
                "sweep_ledger_s": sqlite.sweep.ledger_wall.as_secs_f64(),
                "sweep_seen_s": sqlite.sweep.observed_wall.as_secs_f64(),
                "bare_s": sqlite.bare_total().as_secs_f64(),
                "ratio": (sqlite_ratio * 100.0).round() / 100.0,
                "peak_sampled_mib": mib(sqlite.sweep.peak_sampled_kib),
                "vmhwm_mib": mib(sqlite.sweep.peak_hwm_kib),
            },
            "target_met": ratio <= TARGET_RATIO && highest < TARGET_RSS_MIB && flat,
        }),
    );
}
