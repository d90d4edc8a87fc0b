//! Q1, queue throughput: the path every production job takes, ledger included. No-op jobs
//! are enqueued in bulk (ledger rows in PostgreSQL, entries on the Redis stream), then one
//! `lifecycle run` process drains them at concurrency 1, 10 and 50; at 50 also with 5,000
//! and 500,000 queued. Beside it, in the same rounds, the same Redis's unpipelined LPUSH
//! rate (`redis-benchmark -t lpush -n 200000 -q`): the floor the ratio is taken against.
//! The embedded backend (SQLite, the queue in the same file) is drained the same way.
//!
//! `cargo bench --bench queue_throughput`; `Q1_ROUNDS` (3), `Q1_JOBS` (50000),
//! `Q1_LARGE` (500000; 0 skips it), `Q1_CONCURRENCY` (1,10,50) and `Q1_EMBEDDED` (1; 0
//! skips the SQLite drains) change the run, for a profile of one case; with `BENCH_PERF=<file>`
//! each drain runs under `perf record -a -g` (the whole machine: worker, PostgreSQL, Redis)
//! into that file. Prints a table, appends to
//! `benches/results.jsonl` and draws `benches/queue_throughput.png`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use lifecycle::config::{QueueBackend, Secret};
use lifecycle::queue::EnqueueRequest;
use lifecycle::store::ledger;
use lifecycle_jobs::{Job, Noop};
use plotters::prelude::*;
use support::{Service, Table, median, thousands};

const ENQUEUE_CHUNK: usize = 5_000;
const CONCURRENCIES: [usize; 3] = [1, 10, 50];
/// Targets of issue 6.
const TARGET_RATE: f64 = 25_000.0;
const TARGET_LPUSH_RATIO: f64 = 0.3;
const TARGET_RSS_MIB: f64 = 32.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    /// PostgreSQL ledger, Redis Streams transport: production.
    Production,
    /// SQLite file, the ledger table is the queue: the embedded default.
    Embedded,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Production => "PostgreSQL + Redis",
            Backend::Embedded => "SQLite (embedded)",
        }
    }
}

/// One drain: how fast, how much memory.
#[derive(Clone, Debug)]
struct Drain {
    backend: Backend,
    concurrency: usize,
    jobs: usize,
    enqueue_rate: f64,
    seconds: f64,
    rate: f64,
    /// Rate over 10–90 % of the drain: without the start (the worker connecting, preparing
    /// its statements), which weighs on a short drain.
    steady_rate: f64,
    /// Rates over 10–30 % and 70–95 % of the drain: a backlog that slows the queue shows.
    early_rate: f64,
    late_rate: f64,
    peak_rss_kib: u64,
}

fn noop_requests(count: usize) -> Vec<EnqueueRequest> {
    let payload = serde_json::to_string(&Noop { account_id: 1 }).expect("encode");
    (0..count)
        .map(|_| EnqueueRequest {
            kind: Noop::NAME,
            account_id: Some(1),
            payload: payload.clone(),
            idempotency_key: None,
            run_at_ms: None,
        })
        .collect()
}

/// Enqueues `jobs` no-ops, starts one worker process at `concurrency`, and samples how
/// many are left until none is.
async fn drain(backend: Backend, concurrency: usize, jobs: usize) -> Drain {
    let namespace = format!("bench-q1-{}", uuid::Uuid::new_v4().simple());
    let folder = tempfile::tempdir().expect("temp dir");
    let (settings, database) = match backend {
        Backend::Production => {
            let url = support::fresh_database("lifecycle_bench_q1").await;
            (support::production_settings(&url, &namespace), url)
        }
        Backend::Embedded => {
            let mut settings = lifecycle::config::Settings::load(None).expect("settings");
            let url = format!("sqlite:{}", folder.path().join("lifecycle.db").display());
            settings.database.url = Secret::new(url.clone());
            settings.queue.backend = QueueBackend::Database;
            support::unschedule_sweeps(&mut settings);
            (settings, url)
        }
    };
    let app = support::app(settings).await;

    let started = Instant::now();
    let mut left = jobs;
    while left > 0 {
        let chunk = left.min(ENQUEUE_CHUNK);
        app.queue
            .enqueue_batch(noop_requests(chunk))
            .await
            .expect("enqueue");
        left -= chunk;
    }
    let enqueue_rate = jobs as f64 / started.elapsed().as_secs_f64();

    // Production runs as deployed (config/production.toml: pool of 20, batches of up to
    // 100); the embedded default with its defaults. Only the concurrency varies.
    let concurrency_var = ("LIFECYCLE__QUEUE__CONCURRENCY", concurrency.to_string());
    let profile = support::Profile::start();
    let mut service = match backend {
        Backend::Production => {
            let mut vars = support::production_vars(&database, &namespace);
            vars.push(concurrency_var);
            Service::start(&["--config", "config/production.toml"], &vars, None).await
        }
        Backend::Embedded => {
            let vars = [("DATABASE_URL", database.clone()), concurrency_var];
            Service::start(&[], &vars, None).await
        }
    };

    let samples = sample_until_drained(&app, backend, &namespace, jobs).await;
    let peak_rss_kib = service.peak_rss_kib();
    drop(profile);
    service.terminate();
    let done = ledger::count_in_state(&app.store, "done")
        .await
        .expect("count");
    assert_eq!(done, jobs as i64, "every job done, once");
    app.store.close().await;
    if backend == Backend::Production {
        support::forget_namespace(&namespace).await;
    }

    // From the last moment none was finished to the first moment all were.
    let start = samples
        .iter()
        .rev()
        .find(|(_, left)| *left == jobs)
        .map_or(samples[0].0, |(at, _)| *at);
    let end = samples.last().expect("samples").0;
    let seconds = (end - start).as_secs_f64();
    let rate_between = |from: f64, to: f64| {
        let at = |fraction: f64| {
            let target = jobs - (jobs as f64 * fraction) as usize;
            *samples
                .iter()
                .find(|(_, left)| *left <= target)
                .expect("sampled")
        };
        let (time_a, left_a) = at(from);
        let (time_b, left_b) = at(to);
        (left_a - left_b) as f64 / (time_b - time_a).as_secs_f64().max(0.001)
    };
    Drain {
        backend,
        concurrency,
        jobs,
        enqueue_rate,
        seconds,
        rate: jobs as f64 / seconds,
        steady_rate: rate_between(0.1, 0.9),
        early_rate: rate_between(0.1, 0.3),
        late_rate: rate_between(0.7, 0.95),
        peak_rss_kib,
    }
}

/// (when, jobs not yet finished) every few milliseconds. On Redis an entry leaves the
/// stream once its job is settled in the ledger, so `XLEN` counts what is left; on the
/// embedded backend, a count of unfinished ledger rows does.
async fn sample_until_drained(
    app: &lifecycle::App,
    backend: Backend,
    namespace: &str,
    jobs: usize,
) -> Vec<(Instant, usize)> {
    let stream = format!("{{lifecycle:{namespace}}}:stream");
    let client = redis::Client::open(support::redis_url()).expect("redis url");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let mut samples = vec![(Instant::now(), jobs)];
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let left = match backend {
            Backend::Production => redis::cmd("XLEN")
                .arg(&stream)
                .query_async::<usize>(&mut redis)
                .await
                .expect("XLEN"),
            Backend::Embedded => {
                let queued = ledger::count_in_state(&app.store, "queued")
                    .await
                    .expect("count");
                let running = ledger::count_in_state(&app.store, "running")
                    .await
                    .expect("count");
                (queued + running) as usize
            }
        };
        samples.push((Instant::now(), left));
        if left == 0 {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "the drain stalled at {left} left"
        );
        let pause = match backend {
            Backend::Production => 2,
            Backend::Embedded => 25,
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

#[tokio::main]
async fn main() {
    let rounds: usize = support::env_or("Q1_ROUNDS", 3);
    let jobs: usize = support::env_or("Q1_JOBS", 50_000);
    let large: usize = support::env_or("Q1_LARGE", 500_000);
    let small: usize = support::env_or("Q1_SMALL", 5_000);
    let concurrencies: Vec<usize> = std::env::var("Q1_CONCURRENCY")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|c| c.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| CONCURRENCIES.to_vec());
    let backends: Vec<Backend> = if support::env_or("Q1_EMBEDDED", 1) == 0 {
        vec![Backend::Production]
    } else {
        vec![Backend::Production, Backend::Embedded]
    };

    let mut lpush = Vec::new();
    let mut drains: Vec<Drain> = Vec::new();
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        lpush.push(support::redis_lpush_rate());
        for backend in backends.iter().copied() {
            for concurrency in concurrencies.iter().copied() {
                let drain = drain(backend, concurrency, jobs).await;
                eprintln!(
                    "  {} c={concurrency}: {} jobs in {:.2} s = {} jobs/s, peak RSS {} KiB",
                    backend.label(),
                    drain.jobs,
                    drain.seconds,
                    thousands(drain.rate),
                    drain.peak_rss_kib
                );
                drains.push(drain);
            }
        }
        if small > 0 {
            let drain = drain(Backend::Production, 50, small).await;
            eprintln!("  5,000 queued: {} jobs/s", thousands(drain.rate));
            drains.push(drain);
        }
        lpush.push(support::redis_lpush_rate());
    }
    // The large backlog once: it takes as long as the rest together.
    if large > 0 {
        let drain = drain(Backend::Production, 50, large).await;
        eprintln!(
            "  {large} queued: {} jobs/s (early {}, late {})",
            thousands(drain.rate),
            thousands(drain.early_rate),
            thousands(drain.late_rate)
        );
        drains.push(drain);
        lpush.push(support::redis_lpush_rate());
    }

    let lpush_rate = median(&lpush);
    let pick = |backend: Backend, concurrency: usize, jobs: usize| -> Vec<&Drain> {
        drains
            .iter()
            .filter(|d| d.backend == backend && d.concurrency == concurrency && d.jobs == jobs)
            .collect()
    };
    let median_of = |runs: &[&Drain], f: fn(&Drain) -> f64| {
        median(&runs.iter().map(|d| f(d)).collect::<Vec<_>>())
    };

    let mut table = Table::new(
        &format!(
            "Q1 queue throughput: no-op jobs, one worker process, medians of {rounds} \
             (unpipelined LPUSH on the same Redis: {} ops/s)",
            thousands(lpush_rate)
        ),
        &[
            "backend",
            "queued",
            "concurrency",
            "jobs/s",
            "x LPUSH",
            "steady 10-90 % jobs/s",
            "peak RSS MiB",
            "bulk enqueue jobs/s",
        ],
    );
    let mut series: Vec<(Backend, Vec<(usize, f64)>)> = Vec::new();
    let mut result_rows = Vec::new();
    for backend in [Backend::Production, Backend::Embedded] {
        let mut points = Vec::new();
        let mut sizes: Vec<(usize, usize)> = concurrencies.iter().map(|c| (*c, jobs)).collect();
        if backend == Backend::Production {
            sizes.push((50, small));
            if large > 0 {
                sizes.push((50, large));
            }
        }
        for (concurrency, queued) in sizes {
            let runs = pick(backend, concurrency, queued);
            if runs.is_empty() {
                continue;
            }
            let rate = median_of(&runs, |d| d.rate);
            let rss_mib = median_of(&runs, |d| d.peak_rss_kib as f64) / 1024.0;
            let enqueue = median_of(&runs, |d| d.enqueue_rate);
            if queued == jobs {
                points.push((concurrency, rate));
            }
            table.row(vec![
                backend.label().into(),
                thousands(queued as f64),
                concurrency.to_string(),
                thousands(rate),
                format!("{:.2}", rate / lpush_rate),
                thousands(median_of(&runs, |d| d.steady_rate)),
                format!("{rss_mib:.1}"),
                thousands(enqueue),
            ]);
            result_rows.push(serde_json::json!({
                "backend": backend.label(),
                "queued": queued,
                "concurrency": concurrency,
                "jobs_per_sec": rate.round(),
                "lpush_ratio": (rate / lpush_rate * 1000.0).round() / 1000.0,
                "peak_rss_mib": (rss_mib * 10.0).round() / 10.0,
                "bulk_enqueue_jobs_per_sec": enqueue.round(),
                "steady_jobs_per_sec": median_of(&runs, |d| d.steady_rate).round(),
                "early_jobs_per_sec": median_of(&runs, |d| d.early_rate).round(),
                "late_jobs_per_sec": median_of(&runs, |d| d.late_rate).round(),
                "runs": runs.len(),
            }));
        }
        series.push((backend, points));
    }
    table.print();

    let at = |queued: usize| {
        let runs = pick(Backend::Production, 50, queued);
        (!runs.is_empty()).then(|| median_of(&runs, |d| d.rate))
    };
    let steady_at = |queued: usize| {
        let runs = pick(Backend::Production, 50, queued);
        (!runs.is_empty()).then(|| median_of(&runs, |d| d.steady_rate))
    };
    let c50 = at(jobs).unwrap_or(f64::NAN);
    let peak_rss = drains
        .iter()
        .filter(|d| d.backend == Backend::Production)
        .map(|d| d.peak_rss_kib)
        .max()
        .unwrap_or(0) as f64
        / 1024.0;
    let mut verdict = Table::new(
        "Q1 against its targets",
        &["figure", "measured", "target", "met"],
    );
    let met = |ok: bool| if ok { "yes" } else { "NO" }.to_string();
    verdict.row(vec![
        format!(
            "jobs/s at concurrency 50, {} queued",
            thousands(jobs as f64)
        ),
        thousands(c50),
        format!(">= {}", thousands(TARGET_RATE)),
        met(c50 >= TARGET_RATE),
    ]);
    verdict.row(vec![
        "ratio to unpipelined LPUSH".into(),
        format!("{:.2}", c50 / lpush_rate),
        format!(">= {TARGET_LPUSH_RATIO}"),
        met(c50 / lpush_rate >= TARGET_LPUSH_RATIO),
    ]);
    if let (Some(small_rate), Some(large_rate)) = (
        steady_at(small),
        (large > 0).then(|| steady_at(large)).flatten(),
    ) {
        let ratio = large_rate / small_rate;
        verdict.row(vec![
            format!(
                "steady rate, {} queued vs {} queued",
                thousands(large as f64),
                thousands(small as f64)
            ),
            format!(
                "{ratio:.2} ({} vs {})",
                thousands(large_rate),
                thousands(small_rate)
            ),
            ">= 0.9 (no slowdown)".into(),
            met(ratio >= 0.9),
        ]);
    }
    verdict.row(vec![
        "worker peak RSS, MiB (any run)".into(),
        format!("{peak_rss:.1}"),
        format!("< {TARGET_RSS_MIB}"),
        met(peak_rss < TARGET_RSS_MIB),
    ]);
    verdict.print();

    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/queue_throughput.png");
    draw_chart(&chart, &series, lpush_rate).expect("draw the chart");
    println!("chart written to {}", chart.display());

    support::record(
        "Q1 queue throughput",
        serde_json::json!({
            "rounds": rounds,
            "lpush_ops_per_sec": lpush_rate.round(),
            "lpush_runs": lpush.iter().map(|r| r.round()).collect::<Vec<_>>(),
            "rows": result_rows,
            "target_met": c50 >= TARGET_RATE && c50 / lpush_rate >= TARGET_LPUSH_RATIO,
        }),
    );
}

/// Throughput against concurrency, one line per backend, with the target and the LPUSH
/// floor's 0.3 as horizontal lines.
fn draw_chart(
    path: &Path,
    series: &[(Backend, Vec<(usize, f64)>)],
    lpush_rate: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    // A font compiled in (Ubuntu Light), so the chart draws on a machine without fonts.
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        epaint_default_fonts::UBUNTU_LIGHT,
    )
    .map_err(|_| "invalid font")?;
    let mut levels: Vec<usize> = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(c, _)| *c))
        .collect();
    levels.sort_unstable();
    levels.dedup();
    let top = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, rate)| *rate))
        .chain([TARGET_RATE, lpush_rate * TARGET_LPUSH_RATIO])
        .fold(0.0, f64::max)
        * 1.15;
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Q1: no-op jobs drained by one worker process",
            ("sans-serif", 24),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..(levels.len() as f64 - 0.5), 0f64..top)?;
    // One evenly spaced column per concurrency measured.
    let label = |x: &f64| {
        let index = x.round();
        if (x - index).abs() > 1e-6 || index < 0.0 {
            return String::new();
        }
        levels
            .get(index as usize)
            .map_or(String::new(), |c| c.to_string())
    };
    chart
        .configure_mesh()
        .x_desc("concurrency (jobs at once)")
        .y_desc("jobs per second")
        .x_labels(levels.len() * 2 + 1)
        .x_label_formatter(&label)
        .y_label_formatter(&|y| thousands(*y))
        .label_style(("sans-serif", 16))
        .draw()?;
    let colors = [RGBColor(31, 119, 180), RGBColor(44, 160, 44)];
    for ((backend, points), color) in series.iter().zip(colors) {
        let line: Vec<(f64, f64)> = points
            .iter()
            .map(|(c, r)| (levels.iter().position(|l| l == c).unwrap_or(0) as f64, *r))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(3)))?
            .label(backend.label())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(
            line.iter()
                .map(|point| Circle::new(*point, 5, color.filled())),
        )?;
        chart
            .draw_series(line.iter().map(|(x, y)| {
                Text::new(thousands(*y), (*x, *y + top * 0.02), ("sans-serif", 15))
            }))?;
    }
    let target = RGBColor(214, 39, 40);
    chart
        .draw_series(LineSeries::new(
            [
                (-0.5, TARGET_RATE),
                (levels.len() as f64 - 0.5, TARGET_RATE),
            ],
            target.stroke_width(1),
        ))?
        .label("target at concurrency 50: 25,000 jobs/s")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], target));
    let floor = RGBColor(127, 127, 127);
    let floor_rate = lpush_rate * TARGET_LPUSH_RATIO;
    chart
        .draw_series(LineSeries::new(
            [(-0.5, floor_rate), (levels.len() as f64 - 0.5, floor_rate)],
            floor.stroke_width(1),
        ))?
        .label(format!(
            "0.3 x unpipelined LPUSH on the same Redis ({} ops/s)",
            thousands(lpush_rate)
        ))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], floor));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
