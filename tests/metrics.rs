//! `/metrics` of `lifecycle run`, parsed as Prometheus reads it: the counters move in the
//! process that does the work (enqueued where the API records jobs, processed where the
//! workers settle them), the ledger's gauges follow, and no token without the `metrics`
//! scope (or no token at all) reads it. On both backends.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::process::{Service, schedule_variable};
use common::sweeps;
use common::{Backend, TestEnv};
use lifecycle::store::ledger;

const DEV_TOKEN: &str = "dev-token-for-the-api";
const METRICS_TOKEN: &str = "prometheus-scraper-token";
const ENQUEUE_ONLY_TOKEN: &str = "auth-service-token";

/// A configuration file with a metrics-only token and an enqueue-only one.
fn config_file(folder: &std::path::Path) -> std::path::PathBuf {
    let path = folder.join("tokens.toml");
    let toml = format!(
        "[[http.tokens]]\nname = \"prometheus\"\nsha256 = \"{}\"\nkinds = []\nmetrics = true\n\n\
         [[http.tokens]]\nname = \"auth-service\"\nsha256 = \"{}\"\nkinds = [\"record-activity\"]\n",
        lifecycle_jobs::sha256_hex(METRICS_TOKEN),
        lifecycle_jobs::sha256_hex(ENQUEUE_ONLY_TOKEN),
    );
    std::fs::write(&path, toml).unwrap();
    path
}

/// The samples of an exposition: `name{labels}` -> value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(service: &Service, token: Option<&str>) -> common::http_client::Answer {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|value| vec![("Authorization", value)])
        .unwrap_or_default();
    common::http_client::request(service.port, "GET", "/metrics", &headers, b"").await
}

async fn metrics_of(service: &Service) -> HashMap<String, f64> {
    let answer = scrape(service, Some(METRICS_TOKEN)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer.body.ends_with("# EOF\n"),
        "OpenMetrics text: {}",
        answer.body
    );
    samples(&answer.body)
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

const ACTIVITY: &str = "user::record_activity";

async fn counters_move_where_the_work_is_done(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = common::seed_world(&env, 1).await;
    let folder = tempfile::tempdir().unwrap();
    let config = config_file(folder.path());
    let config = config.to_str().unwrap();
    let extra = [
        ("LIFECYCLE__HTTP__API_TOKENS", DEV_TOKEN),
        ("LIFECYCLE_CONFIG", config),
    ];
    let mut api = Service::start_with_args(&env, &["--workers", "0"], &extra, None).await;

    // Refused without a token, and with a token whose scope lacks `metrics`.
    assert_eq!(scrape(&api, None).await.status, 401);
    assert_eq!(scrape(&api, Some("wrong")).await.status, 401);
    assert_eq!(scrape(&api, Some(ENQUEUE_ONLY_TOKEN)).await.status, 403);
    assert_eq!(scrape(&api, Some(DEV_TOKEN)).await.status, 200);

    let before = metrics_of(&api).await;
    let enqueued = format!("lifecycle_jobs_enqueued_total{{kind=\"{ACTIVITY}\"}}");
    assert_eq!(value(&before, &enqueued), 0.0);
    assert_eq!(
        value(&before, "lifecycle_build_info{version=\"0.1.0\"}"),
        1.0
    );
    assert!(before.contains_key("lifecycle_queue_oldest_job_age_seconds"));
    for state in [
        "queued",
        "scheduled",
        "running",
        "retrying",
        "dead",
        "done",
        "discarded",
    ] {
        assert!(
            before.contains_key(&format!("lifecycle_jobs{{state=\"{state}\"}}")),
            "{state}"
        );
    }

    let headers = [
        ("Authorization", ENQUEUE_ONLY_TOKEN),
        ("Content-Type", "application/json"),
    ];
    let bearer = format!("Bearer {ENQUEUE_ONLY_TOKEN}");
    let headers = [(headers[0].0, bearer.as_str()), headers[1]];
    for user in [world.admin, world.admin, 987_654] {
        let body = serde_json::json!({
            "account_id": world.account, "user_id": user, "source": "api"
        })
        .to_string();
        let answer = common::http_client::request(
            api.port,
            "POST",
            "/v1/jobs/record-activity",
            &headers,
            body.as_bytes(),
        )
        .await;
        assert_eq!(answer.status, 202, "{answer:?}");
    }
    let after = metrics_of(&api).await;
    assert_eq!(
        value(&after, &enqueued),
        3.0,
        "counted by the process that recorded them"
    );

    // The workers' process settles them: processed there, not in the API's.
    let worker = Service::start_with_args(&env, &[], &extra, None).await;
    let started = Instant::now();
    while ledger::count_in_state(env.store(), "done").await.unwrap() < 2
        || ledger::count_in_state(env.store(), "dead").await.unwrap() < 1
    {
        assert!(started.elapsed() < Duration::from_secs(60), "the jobs run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let worked = metrics_of(&worker).await;
    let processed = |outcome: &str| {
        format!("lifecycle_jobs_processed_total{{kind=\"{ACTIVITY}\",outcome=\"{outcome}\"}}")
    };
    assert_eq!(value(&worked, &processed("ok")), 2.0);
    assert_eq!(value(&worked, &processed("dead")), 1.0);
    assert_eq!(value(&worked, &processed("retry")), 0.0);
    assert_eq!(
        value(
            &worked,
            &format!("lifecycle_job_duration_seconds_count{{kind=\"{ACTIVITY}\"}}")
        ),
        3.0
    );
    assert_eq!(
        value(&worked, &enqueued),
        0.0,
        "the worker enqueued nothing"
    );
    assert_eq!(value(&worked, "lifecycle_jobs{state=\"done\"}"), 2.0);
    assert_eq!(value(&worked, "lifecycle_jobs{state=\"dead\"}"), 1.0);
    let api_after = metrics_of(&api).await;
    assert_eq!(
        value(&api_after, &processed("ok")),
        0.0,
        "the API ran nothing"
    );
    // No unbounded label: one series per registered kind and outcome, whatever ran.
    let kinds = lifecycle_jobs::KINDS.len() + 1;
    let processed_series = worked
        .keys()
        .filter(|series| series.starts_with("lifecycle_jobs_processed_total{"))
        .count();
    assert_eq!(processed_series, kinds * 4);
    drop(worker);
    assert!(api.terminate().success());
}

on_both_backends!(counters_move_where_the_work_is_done);

/// The sweeps' series: a `lifecycle run` with the idle lock scheduled every 2 s fires it,
/// counts the users it locked (one, in an account where one of eleven is idle) and the
/// account the breaker holds (one of two idle there), and shows the next firing and the
/// last finished run, read from the database by the background refresh.
async fn the_sweeps_series_follow_the_scheduled_runs(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let now = chrono::Utc::now();
    let recently = now - chrono::Duration::days(1);
    let long_ago = now - chrono::Duration::days(100);
    let large = common::seed_world(&env, 0).await;
    sweeps::active_agents(&env, &large, "busy", 9, recently).await;
    let idle = common::seed_agent(&env, &large, "Idle", "en").await;
    sweeps::last_active(&env, &[large.admin], recently).await;
    sweeps::last_active(&env, &[idle], long_ago).await;
    let small = common::seed_world(&env, 0).await;
    let idle_in_small = common::seed_agent(&env, &small, "Alone", "en").await;
    sweeps::last_active(&env, &[small.admin], recently).await;
    sweeps::last_active(&env, &[idle_in_small], long_ago).await;

    let folder = tempfile::tempdir().unwrap();
    let config = config_file(folder.path());
    let cron = schedule_variable("lock_idle", "cron");
    let extra = [
        ("LIFECYCLE_CONFIG", config.to_str().unwrap()),
        (cron.as_str(), "*/2 * * * * *"),
    ];
    let service = Service::start(&env, &extra, None).await;
    let fired = "lifecycle_schedule_firings_total{sweep=\"lock_idle\"}";
    let locked = "lifecycle_sweep_rows_changed_total{sweep=\"lock_idle\"}";
    let finished = "lifecycle_sweep_last_finished_timestamp_seconds{sweep=\"lock_idle\"}";
    let next = "lifecycle_schedule_next_firing_timestamp_seconds{sweep=\"lock_idle\"}";
    // The first scrape reads the database itself; later ones show what the background
    // refresh read: the last finished run must move past what the first scrape saw.
    let first = metrics_of(&service).await;
    let first_finished = first.get(finished).copied().unwrap_or(0.0);
    let started = Instant::now();
    let seen = loop {
        let seen = metrics_of(&service).await;
        if value(&seen, fired) >= 2.0
            && value(&seen, finished) > first_finished
            && value(&seen, "lifecycle_sweep_held_accounts") >= 1.0
        {
            break seen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "two firings, a later finished run and the held account: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(sweeps::status(&env, idle).await, "locked");
    assert_eq!(sweeps::status(&env, idle_in_small).await, "active", "held");
    assert_eq!(
        value(&seen, locked),
        1.0,
        "one user locked however often it fired"
    );
    assert_eq!(value(&seen, "lifecycle_sweep_held_accounts"), 1.0);
    assert!(value(&seen, finished) >= now.timestamp() as f64);
    assert!(value(&seen, next) > now.timestamp() as f64);
    assert_eq!(
        value(&seen, "lifecycle_schedule_firings_total{sweep=\"prune\"}"),
        0.0,
        "an unscheduled sweep never fires"
    );
    assert_eq!(
        value(
            &seen,
            "lifecycle_schedule_next_firing_timestamp_seconds{sweep=\"prune\"}"
        ),
        0.0,
        "no next firing for a disabled sweep"
    );
}

on_both_backends!(the_sweeps_series_follow_the_scheduled_runs);
