//! `/metrics` of `lifecycle run`, parsed as Prometheus reads it: the counters move in the
//! process that does the work (enqueued where the API records jobs, processed where the
//! workers settle them), the ledger's gauges follow, and no token without the `metrics`
//! scope (or no token at all) reads it. On both backends.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::process::Service;
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
