//! D1, the dashboard over a big ledger: `D1_JOBS` (1,000,000) jobs on PostgreSQL,
//! `D1_DEAD` (50,000) of them dead across a few kinds. With the service running on the
//! production configuration (an operator and a metrics token added to it), signed in over
//! HTTP: p50/p99 over `D1_REQUESTS` (200) requests each of the dead list filtered by kind,
//! its deep page and the unfiltered deep page (`after=<id>`), and a `/metrics` scrape; the
//! deep page also in-process through `store::admin::list_jobs` with a `JobCursor`. Then,
//! the service stopped, `lifecycle jobs retry --all --state dead --yes` against the bare
//! UPDATE that re-queues the same jobs on an identical copy, in the same run.
//!
//! `cargo bench --bench dashboard_queries` (`D1_KEEP=1` keeps the database `lifecycle_bench_d1`
//! for EXPLAIN ANALYZE). Prints a table and appends to
//! `benches/results.jsonl`.

mod support;

use std::time::Instant;

use lifecycle::store::admin::{JobCursor, JobFilter, JobState, list_jobs};
use support::admin_http::{self, METRICS_TOKEN};
use support::job_ledger::{self, DEAD_KINDS};
use support::{Service, Table, percentile};

const TARGET_P99_MS: f64 = 50.0;
const TARGET_RETRY_RATIO: f64 = 2.0;
/// Jobs on a dashboard page (`LIST_LIMIT` in src/http/admin/pages.rs).
const PAGE_SIZE: i64 = 200;
/// The deep page asked for.
const DEEP_PAGE: i64 = 500;
const DATABASE: &str = "lifecycle_bench_d1";
const BARE: &str = "lifecycle_bench_d1_bare";

/// A measured series: what, p50 and p99 in ms, and what the page was.
struct Series {
    name: String,
    times: Vec<f64>,
}

impl Series {
    fn p(&self, fraction: f64) -> f64 {
        percentile(&mut self.times.clone(), fraction)
    }
}

/// The deepest page up to [`DEEP_PAGE`] that the filter has, and the id that ends the
/// page before it (the cursor that asks for it).
async fn deep_cursor(url: &str, where_clause: &str) -> (i64, uuid::Uuid) {
    let matching = job_ledger::count(url, where_clause).await;
    let page = DEEP_PAGE.min(matching / PAGE_SIZE).max(2);
    let id = job_ledger::page_end(url, where_clause, page - 1, PAGE_SIZE)
        .await
        .unwrap_or_else(|| panic!("fewer than {} jobs match {where_clause}", PAGE_SIZE));
    (page, id)
}

#[tokio::main]
async fn main() {
    let jobs: i64 = support::env_or("D1_JOBS", 1_000_000);
    let dead: i64 = support::env_or("D1_DEAD", 50_000);
    let requests: usize = support::env_or("D1_REQUESTS", 200);
    let load_before = support::cli::load_average();

    let namespace = format!("bench-d1-{}", uuid::Uuid::new_v4().simple());
    let url = support::fresh_database(DATABASE).await;
    let app = support::app(support::production_settings(&url, &namespace)).await;
    eprintln!("D1: filling {jobs} jobs, {dead} dead");
    let fill = job_ledger::fill(&url, jobs, dead).await;
    let (dead_before, _, _) = job_ledger::states(&url).await;
    assert_eq!(dead_before, dead, "the fill wrote D1_DEAD dead jobs");
    support::drop_database(BARE).await;
    // The copy needs the source without connections: the bench's own pool closes first.
    app.store.close().await;
    support::admin_sql(format!("CREATE DATABASE {BARE} TEMPLATE {DATABASE}"))
        .await
        .expect("copy the filled database");
    let app = support::app(support::production_settings(&url, &namespace)).await;

    let kind = DEAD_KINDS[0];
    let kind_clause = format!("state = 'dead' AND kind = '{kind}'");
    let (kind_page, kind_cursor) = deep_cursor(&url, &kind_clause).await;
    let (any_page, any_cursor) = deep_cursor(&url, "TRUE").await;

    let folder = tempfile::tempdir().expect("temp dir");
    let config = admin_http::production_config_with_operator(folder.path());
    let config = config.to_str().expect("a UTF-8 path");
    let vars = support::production_vars(&url, &namespace);
    let mut service = Service::start(&["--config", config], &vars, None).await;
    let cookies = admin_http::sign_in(service.port).await;
    let signed = [("Cookie", cookies.as_str())];
    let bearer = format!("Bearer {METRICS_TOKEN}");
    let scraper = [("Authorization", bearer.as_str())];

    let kind_query = kind.replace(':', "%3A");
    let mut series = Vec::new();
    for (name, path, headers, expect) in [
        (
            "GET /admin/jobs?state=dead&kind=K (page 1)".to_string(),
            format!("/admin/jobs?state=dead&kind={kind_query}"),
            &signed,
            kind,
        ),
        (
            format!("GET /admin/jobs?state=dead&kind=K&after=<id> (page {kind_page})"),
            format!("/admin/jobs?state=dead&kind={kind_query}&after={kind_cursor}"),
            &signed,
            kind,
        ),
        (
            format!("GET /admin/jobs?state=any&after=<id> (page {any_page})"),
            format!("/admin/jobs?state=any&after={any_cursor}"),
            &signed,
            "",
        ),
        (
            "GET /metrics".to_string(),
            "/metrics".to_string(),
            &scraper,
            "lifecycle_jobs",
        ),
    ] {
        eprintln!("D1: {requests} x {name}");
        let times = admin_http::time_gets(service.port, &path, headers, expect, requests).await;
        series.push(Series { name, times });
    }

    // The deep pages in-process, through the store's keyset query, as the page will ask.
    let now_ms = chrono::Utc::now().timestamp_millis();
    for (name, filter, cursor, page) in [
        (
            "store::admin::list_jobs, dead of kind K",
            JobFilter {
                state: Some(JobState::Dead),
                kind: Some(kind.to_string()),
                ..Default::default()
            },
            kind_cursor,
            kind_page,
        ),
        (
            "store::admin::list_jobs, any state",
            JobFilter::default(),
            any_cursor,
            any_page,
        ),
    ] {
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let started = Instant::now();
            let listed = list_jobs(
                &app.store,
                &filter,
                Some(JobCursor { id: cursor }),
                PAGE_SIZE,
                now_ms,
            )
            .await
            .expect("list_jobs");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(listed.jobs.len() as i64, PAGE_SIZE, "a full page");
            assert!(
                listed.jobs.iter().all(|job| job.id < cursor),
                "after the cursor"
            );
        }
        series.push(Series {
            name: format!("{name} after <id> (page {page}, in-process)"),
            times,
        });
    }
    service.terminate();
    app.store.close().await;

    eprintln!("D1: retry-all through the CLI, the service stopped");
    let started = Instant::now();
    let printed = support::cli::lifecycle(
        &[
            "--config",
            config,
            "jobs",
            "retry",
            "--all",
            "--state",
            "dead",
            "--yes",
            "--operator",
            "bench",
        ],
        &vars,
        None,
        None,
    );
    let retry = started.elapsed();
    assert!(
        printed.contains(&format!("retried {dead} job(s)")),
        "the CLI retried every dead job: {printed}"
    );
    let (dead_after, queued_after, _) = job_ledger::states(&url).await;
    assert_eq!((dead_after, queued_after), (0, dead), "the retry's counts");
    let bare_url = support::database_url(BARE);
    let (bare_changed, bare) = job_ledger::bare_requeue_dead(&bare_url).await;
    assert_eq!(
        bare_changed as i64, dead,
        "the bare UPDATE re-queued every dead job"
    );
    assert_eq!(job_ledger::states(&bare_url).await.0, 0, "none dead after");
    let retry_ratio = retry.as_secs_f64() / bare.as_secs_f64();
    // D1_KEEP=1 keeps the ledger (its dead jobs re-queued) for EXPLAIN ANALYZE.
    if support::env_or("D1_KEEP", 0) == 0 {
        support::drop_database(DATABASE).await;
    }
    support::drop_database(BARE).await;
    support::forget_namespace(&namespace).await;
    let load_after = support::cli::load_average();

    let mut table = Table::new(
        &format!(
            "D1 dashboard over {} jobs ({} dead, kind K = {kind}), {requests} requests each; \
             load average before {load_before}, after {load_after}",
            support::thousands(jobs as f64),
            support::thousands(dead as f64)
        ),
        &["request", "p50 ms", "p99 ms", "target p99", "met"],
    );
    let yes = |met: bool| if met { "yes" } else { "NO" }.to_string();
    for entry in &series {
        let p99 = entry.p(0.99);
        table.row(vec![
            entry.name.clone(),
            format!("{:.2}", entry.p(0.5)),
            format!("{p99:.2}"),
            format!("< {TARGET_P99_MS}"),
            yes(p99 < TARGET_P99_MS),
        ]);
    }
    table.print();
    let mut retry_table = Table::new(
        &format!(
            "D1 retry-all of {} dead jobs",
            support::thousands(dead as f64)
        ),
        &["run", "s", "ratio", "target", "met"],
    );
    retry_table.row(vec![
        "bare UPDATE .. WHERE state = 'dead' (floor)".into(),
        format!("{:.3}", bare.as_secs_f64()),
        "1.00".into(),
        "".into(),
        "".into(),
    ]);
    retry_table.row(vec![
        "lifecycle jobs retry --all --state dead --yes".into(),
        format!("{:.3}", retry.as_secs_f64()),
        format!("{retry_ratio:.2}"),
        format!("<= {TARGET_RETRY_RATIO}"),
        yes(retry_ratio <= TARGET_RETRY_RATIO),
    ]);
    retry_table.print();

    let met = series.iter().all(|entry| entry.p(0.99) < TARGET_P99_MS)
        && retry_ratio <= TARGET_RETRY_RATIO;
    support::record(
        "D1 dashboard queries",
        serde_json::json!({
            "jobs": jobs,
            "dead": dead,
            "requests": requests,
            "kind": kind,
            "fill_s": fill.as_secs_f64(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "series": series.iter().map(|entry| serde_json::json!({
                "request": entry.name,
                "p50_ms": entry.p(0.5),
                "p99_ms": entry.p(0.99),
            })).collect::<Vec<_>>(),
            "retry_all_s": retry.as_secs_f64(),
            "bare_update_s": bare.as_secs_f64(),
            "retry_ratio": (retry_ratio * 100.0).round() / 100.0,
            "target_met": met,
        }),
    );
}
