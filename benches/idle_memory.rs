//! M1, idle memory: the resident memory of `lifecycle run` left idle for `M1_SECONDS` (60),
//! on the embedded default (SQLite file and mail as files, in a fresh folder: the README's
//! first command) and on the production configuration (PostgreSQL and Redis), both started
//! at once. Idle still means working: each polls or blocks on its queue, relays the outbox
//! and reconciles on schedule.
//!
//! `cargo bench --bench idle_memory`. Prints a table and appends to `benches/results.jsonl`.

mod support;

use std::time::Duration;

use support::{Service, Table};

const TARGET_MIB: f64 = 32.0;

#[tokio::main]
async fn main() {
    let seconds: u64 = support::env_or("M1_SECONDS", 60);

    let folder = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(folder.path().join("var")).expect("var folder");
    let embedded = Service::start(&[], &[], Some(folder.path())).await;

    let database = "lifecycle_bench_m1";
    let url = support::fresh_database(database).await;
    let namespace = format!("bench-m1-{}", uuid::Uuid::new_v4().simple());
    let mut production = Service::start(
        &["--config", "config/production.toml"],
        &support::production_vars(&url, &namespace),
        None,
    )
    .await;

    eprintln!("both idle for {seconds} s");
    let mut samples: Vec<(u64, u64)> = Vec::new();
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push((embedded.rss_kib(), production.rss_kib()));
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    let embedded_series: Vec<u64> = samples.iter().map(|(e, _)| *e).collect();
    let production_series: Vec<u64> = samples.iter().map(|(_, p)| *p).collect();
    let rows = [
        (
            "embedded default (SQLite, mail as files)",
            &embedded,
            embedded_series,
        ),
        (
            "production (PostgreSQL + Redis)",
            &production,
            production_series,
        ),
    ]
    .map(|(name, service, series)| {
        (
            name,
            mib(*series.last().unwrap_or(&0)),
            mib(series.iter().copied().max().unwrap_or(0)),
            mib(service.peak_rss_kib()),
        )
    });
    drop(embedded);
    production.terminate();
    support::forget_namespace(&namespace).await;
    support::drop_database(database).await;

    let mut table = Table::new(
        &format!("M1 idle memory of `lifecycle run` after {seconds} s"),
        &[
            "configuration",
            "RSS MiB at the end",
            "highest RSS sampled",
            "peak (VmHWM)",
            "target",
            "met",
        ],
    );
    for (name, end, highest, peak) in &rows {
        table.row(vec![
            name.to_string(),
            format!("{end:.1}"),
            format!("{highest:.1}"),
            format!("{peak:.1}"),
            format!("< {TARGET_MIB}"),
            if *end < TARGET_MIB { "yes" } else { "NO" }.into(),
        ]);
    }
    table.print();
    support::record(
        "M1 idle memory",
        serde_json::json!({
            "seconds": seconds,
            "runs": rows.iter().map(|(name, end, highest, peak)| serde_json::json!({
                "configuration": name,
                "rss_mib": (end * 10.0).round() / 10.0,
                "highest_sampled_mib": (highest * 10.0).round() / 10.0,
                "peak_mib": (peak * 10.0).round() / 10.0,
            })).collect::<Vec<_>>(),
            "target_met": rows.iter().all(|(_, end, _, _)| *end < TARGET_MIB),
        }),
    );
}
