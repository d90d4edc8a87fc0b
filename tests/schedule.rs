//! The scheduler: each sweep's ticks computed in its time zone (across DST changes), one
//! sweep job per tick however many worker processes fire it, one catch-up run after every
//! process was down across several ticks, and `max_lateness`. On both backends.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use common::process::{Service, lifecycle_command, schedule_variable};
use common::{Backend, TestEnv};
use lifecycle::App;
use lifecycle::config::SweepSchedule;
use lifecycle::queue::worker;
use lifecycle::schedule::firing::fire;
use lifecycle::schedule::{Schedule, Schedules};
use lifecycle::store::{Store, schedule as firings};
use uuid::Uuid;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn sweep(name: &str) -> &'static lifecycle::schedule::Sweep {
    Schedules::sweep(name).unwrap()
}

fn madrid() -> Tz {
    "Europe/Madrid".parse().unwrap()
}

/// The ticks of `schedule` in (`from`, `to`].
fn ticks(schedule: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut ticks = Vec::new();
    let mut now = from;
    while let Some(tick) = schedule.next_tick(now).filter(|tick| *tick <= to) {
        ticks.push(tick);
        now = tick;
    }
    ticks
}

/// Europe/Madrid changes on 2026-03-29 (02:00 CET -> 03:00 CEST) and 2026-10-25 (03:00
/// CEST -> 02:00 CET). A nightly 03:00 fires at 03:00 local time either side of each
/// change: its UTC instant moves by the hour, as a fixed offset would not. A 02:30, which
/// does not exist in March, fires once, at the first instant after the gap; in October,
/// when 02:30 happens twice, once, at the first.
#[test]
fn ticks_keep_the_wall_clock_time_across_dst_in_madrid() {
    let zone = madrid();
    let three = Schedule::new(sweep("release-licenses"), "0 3 * * *", zone).unwrap();
    assert_eq!(
        ticks(
            &three,
            at("2026-03-27T12:00:00Z"),
            at("2026-03-30T12:00:00Z")
        ),
        [
            at("2026-03-28T02:00:00Z"), // 03:00 CET
            at("2026-03-29T01:00:00Z"), // 03:00 CEST, the night of the change
            at("2026-03-30T01:00:00Z"),
        ]
    );
    assert_eq!(
        ticks(
            &three,
            at("2026-10-23T12:00:00Z"),
            at("2026-10-26T12:00:00Z")
        ),
        [
            at("2026-10-24T01:00:00Z"), // 03:00 CEST
            at("2026-10-25T02:00:00Z"), // 03:00 CET, the night of the change
            at("2026-10-26T02:00:00Z"),
        ]
    );
    for tick in ticks(
        &three,
        at("2026-03-01T00:00:00Z"),
        at("2026-11-30T00:00:00Z"),
    ) {
        assert_eq!(
            tick.with_timezone(&zone).format("%H:%M").to_string(),
            "03:00"
        );
    }

    let half_past_two = Schedule::new(sweep("release-licenses"), "30 2 * * *", zone).unwrap();
    assert_eq!(
        ticks(
            &half_past_two,
            at("2026-03-28T12:00:00Z"),
            at("2026-03-29T12:00:00Z")
        ),
        [zone
            .with_ymd_and_hms(2026, 3, 29, 3, 0, 0)
            .unwrap()
            .with_timezone(&Utc)],
        "02:30 does not exist on 29 March: once, right after the gap"
    );
    assert_eq!(
        ticks(
            &half_past_two,
            at("2026-10-24T12:00:00Z"),
            at("2026-10-25T12:00:00Z")
        ),
        [at("2026-10-25T00:30:00Z")],
        "02:30 happens twice on 25 October: once, the first time"
    );
}

/// The tick due is the latest, while it is at most `max_lateness` old; the ones before it
/// are never due.
#[test]
fn only_the_latest_tick_is_due_and_only_within_max_lateness() {
    let nightly = Schedule::new(sweep("prune"), "0 3 * * *", Tz::UTC).unwrap();
    let hour = chrono::Duration::hours(1);
    assert_eq!(
        nightly.due_tick(at("2026-03-10T03:00:00Z"), hour),
        Some(at("2026-03-10T03:00:00Z"))
    );
    assert_eq!(
        nightly.due_tick(at("2026-03-10T04:00:00Z"), hour),
        Some(at("2026-03-10T03:00:00Z")),
        "exactly max_lateness late still runs"
    );
    assert_eq!(nightly.due_tick(at("2026-03-10T04:00:01Z"), hour), None);
    // Three nights down: the last night's tick only.
    assert_eq!(
        nightly.due_tick(at("2026-03-13T03:30:00Z"), hour),
        Some(at("2026-03-13T03:00:00Z"))
    );
    let disabled = Schedule::new(sweep("prune"), " ", Tz::UTC).unwrap();
    assert!(!disabled.is_enabled());
    assert_eq!(disabled.due_tick(at("2026-03-10T03:00:00Z"), hour), None);
}

async fn firing_rows(store: &Store, schedule: &str) -> Vec<(i64, Option<Uuid>)> {
    const SQL: &str = "SELECT tick_at_ms, job_id FROM schedule_firings
                        WHERE schedule = $1 ORDER BY tick_at_ms";
    match store {
        Store::Postgres(pool) => sqlx::query_as(SQL).bind(schedule).fetch_all(pool).await,
        Store::Sqlite(pool) => sqlx::query_as(SQL).bind(schedule).fetch_all(pool).await,
    }
    .unwrap()
}

async fn jobs_of_kind(store: &Store, kind: &str) -> Vec<(Uuid, String, String)> {
    const SQL: &str = "SELECT id, payload, state FROM jobs WHERE kind = $1";
    match store {
        Store::Postgres(pool) => sqlx::query_as(SQL).bind(kind).fetch_all(pool).await,
        Store::Sqlite(pool) => sqlx::query_as(SQL).bind(kind).fetch_all(pool).await,
    }
    .unwrap()
}

fn payload_at(payload: &str) -> DateTime<Utc> {
    let value: serde_json::Value = serde_json::from_str(payload).unwrap();
    value["at"].as_str().unwrap().parse().unwrap()
}

/// The scheduler's round, every 10 minutes of a night across a DST change in Madrid, each
/// round trying twice (two processes): the 02:30 sweep fires once that night, at its tick,
/// and its job carries the tick.
async fn a_firing_across_a_dst_change_fires_once(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let schedule = Schedule::new(sweep("release-licenses"), "30 2 * * *", madrid()).unwrap();
    let lateness = chrono::Duration::hours(24);
    for (from, expected) in [
        ("2026-03-28T20:00:00Z", "2026-03-29T01:00:00Z"),
        ("2026-10-24T20:00:00Z", "2026-10-25T00:30:00Z"),
    ] {
        let from = at(from);
        // The previous night's tick already ran.
        let mut tx = env.tx().await;
        let before = schedule.latest_tick(from).unwrap();
        firings::claim_tick(&mut tx, "release_licenses", before.timestamp_millis(), from)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut fired = Vec::new();
        for step in 0..=60 {
            let now = from + chrono::Duration::minutes(10 * step);
            env.clock.set(now);
            if let Some(tick) = schedule.due_tick(now, lateness) {
                for _process in 0..2 {
                    if let Some(job) = fire(&env.app, &schedule, tick).await.unwrap() {
                        fired.push((tick, job));
                    }
                }
            }
        }
        assert_eq!(fired.len(), 1, "{from}: {fired:?}");
        assert_eq!(fired[0].0, at(expected));
        let job = env.job(fired[0].1).await;
        assert_eq!(job.kind, "sweep::release_due_licenses");
        assert_eq!(payload_at(&job.payload), at(expected));
    }
    let rows = firing_rows(env.store(), "release_licenses").await;
    assert_eq!(
        rows.iter().filter(|(_, job)| job.is_some()).count(),
        2,
        "{rows:?}"
    );
    assert_eq!(
        jobs_of_kind(env.store(), "sweep::release_due_licenses")
            .await
            .len(),
        2
    );
}

/// Every process was down across two ticks (12:10 and 12:20; 12:00 ran), then two come
/// back at once: one catch-up run, of 12:20, not one per missed tick nor one per process.
/// The nightly sweep, whose latest tick is older than `max_lateness`, does not run.
async fn after_downtime_one_catch_up_run(backend: Backend) {
    let adjust = |settings: &mut lifecycle::config::Settings| {
        settings.schedule.max_lateness_secs = 3600;
        settings.schedule.sweeps.insert(
            "prune".into(),
            SweepSchedule {
                cron: Some("*/10 * * * *".into()),
                time_zone: None,
            },
        );
        settings.schedule.sweeps.insert(
            "release_licenses".into(),
            SweepSchedule {
                cron: Some("0 3 * * *".into()),
                time_zone: Some("UTC".into()),
            },
        );
    };
    let mut env = TestEnv::start_with(backend, adjust).await;
    assert_eq!(env.clock.now(), at("2026-03-10T12:00:00Z"));
    let mut tx = env.tx().await;
    let noon = at("2026-03-10T12:00:00Z");
    firings::claim_tick(&mut tx, "prune", noon.timestamp_millis(), noon)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    env.clock.set(at("2026-03-10T12:25:00Z"));

    // Two processes: the test's worker and a second app on the same database and queue.
    let second = App::start(env.app.settings.clone(), env.clock.clone())
        .await
        .unwrap();
    let (stop_second, second_stopped) = tokio::sync::oneshot::channel::<()>();
    let second_worker = tokio::spawn(worker::run_until(second.clone(), 1, async move {
        let _ = second_stopped.await;
        Ok(())
    }));
    env.start_worker();

    let started = Instant::now();
    let job_id = loop {
        let rows = firing_rows(env.store(), "prune").await;
        if let Some((_, Some(job))) = rows.last() {
            break *job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no catch-up run: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let record = env.wait_for(job_id).await;
    assert_eq!(record.state, "done");
    let _ = stop_second.send(());
    second_worker.await.unwrap().unwrap();
    env.stop_worker().await;

    let ticks: Vec<i64> = firing_rows(env.store(), "prune")
        .await
        .into_iter()
        .map(|(tick, _)| tick)
        .collect();
    assert_eq!(
        ticks,
        [
            noon.timestamp_millis(),
            at("2026-03-10T12:20:00Z").timestamp_millis()
        ]
    );
    let jobs = jobs_of_kind(env.store(), "sweep::prune_job_history").await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(payload_at(&jobs[0].1), at("2026-03-10T12:20:00Z"));
    // 03:00 is 9 h 25 min ago, past the hour of max_lateness.
    assert!(
        firing_rows(env.store(), "release_licenses")
            .await
            .is_empty()
    );
    // The sweep recorded what it did on its firing.
    let last = firings::last_firing(env.store(), "prune")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.job_id, Some(job_id));
    assert_eq!(last.job_state.as_deref(), Some("done"));
    assert_eq!(last.rows_changed, Some(0));
    assert_eq!(last.outcome.as_deref(), Some("0 finished jobs pruned"));
}

/// Three `lifecycle run` processes on one database (and one Redis) fire the same
/// every-two-seconds schedule, on the real clock, for several ticks: one sweep job per
/// tick, carrying its tick, and each runs; none skipped as a first start's, though the
/// schedule had never fired (the processes start within its grace of their first tick).
async fn three_processes_fire_each_tick_once(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let cron = schedule_variable("prune", "cron");
    let extra = [(cron.as_str(), "*/2 * * * * *")];
    let mut services = Vec::new();
    for _ in 0..3 {
        services.push(Service::start(&env, &extra, None).await);
    }
    const TICKS: usize = 6;
    let started = Instant::now();
    loop {
        let rows = firing_rows(env.store(), "prune").await;
        let jobs = jobs_of_kind(env.store(), "sweep::prune_job_history").await;
        let done = jobs.iter().filter(|(_, _, state)| state == "done").count();
        if rows.len() > TICKS && done >= TICKS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{rows:?} {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for service in &mut services {
        assert!(service.terminate().success());
    }
    // The schedule had never fired, but a tick that fell while the processes came up is
    // within the first start's grace: every tick, the first one too, fired once.
    let rows = firing_rows(env.store(), "prune").await;
    let jobs = jobs_of_kind(env.store(), "sweep::prune_job_history").await;
    assert_eq!(
        jobs.len(),
        rows.len(),
        "one job per tick: {rows:?} {jobs:?}"
    );
    for (tick, job_id) in &rows {
        let job_id = job_id.expect("each firing names its job");
        let (_, payload, _) = jobs.iter().find(|(id, _, _)| *id == job_id).unwrap();
        assert_eq!(payload_at(payload).timestamp_millis(), *tick);
        assert_eq!(tick % 2000, 0, "a tick of */2 seconds");
    }
}

/// `lifecycle schedule`: each sweep with its expression, zone, next firing and last run.
async fn the_schedule_command_lists_each_sweep(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let prune = Schedule::new(sweep("prune"), "*/10 * * * *", Tz::UTC).unwrap();
    let noon = at("2026-03-10T12:00:00Z");
    let job = fire(&env.app, &prune, noon).await.unwrap().unwrap();
    assert_eq!(env.wait_for(job).await.state, "done");
    env.stop_worker().await;

    let output = lifecycle_command(&env)
        .arg("schedule")
        .env(schedule_variable("prune", "cron"), "*/10 * * * *")
        .env(schedule_variable("release_licenses", "cron"), "0 3 * * *")
        .env(
            schedule_variable("release_licenses", "time_zone"),
            "Europe/Madrid",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = |name: &str| {
        stdout
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line: {stdout}"))
            .to_string()
    };
    let release = line("release_licenses");
    assert!(release.contains("0 3 * * *"), "{release}");
    assert!(release.contains("Europe/Madrid"), "{release}");
    assert!(
        release.contains(" 03:00:00 +01:00") || release.contains(" 03:00:00 +02:00"),
        "the next firing, at 03:00 in Madrid: {release}"
    );
    assert!(release.ends_with("never"), "{release}");
    let prune_line = line("prune");
    assert!(prune_line.contains("*/10 * * * *"), "{prune_line}");
    assert!(
        prune_line.contains(&format!(
            "tick 2026-03-10 12:00:00 +00:00: done, 0 finished jobs pruned (job {job})"
        )),
        "{prune_line}"
    );
    assert!(stdout.contains("schedule.max_lateness_secs"), "{stdout}");

    // A disabled sweep says so; a bad expression is refused naming its key.
    let disabled = lifecycle_command(&env).arg("schedule").output().unwrap();
    assert!(String::from_utf8_lossy(&disabled.stdout).contains("(disabled)"));
    let refused = lifecycle_command(&env)
        .arg("schedule")
        .env(schedule_variable("prune", "cron"), "every night")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("schedule.prune.cron"), "{stderr}");
    let refused = lifecycle_command(&env)
        .arg("schedule")
        .env(schedule_variable("prune", "time_zone"), "Mars/Olympus")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("schedule.prune.time_zone"), "{stderr}");
    let refused = lifecycle_command(&env)
        .arg("schedule")
        .env(schedule_variable("nightly_cleanup", "cron"), "0 3 * * *")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("schedule.nightly_cleanup: no such sweep"),
        "{stderr}"
    );
}

/// A fresh install's first start: the latest tick before the process started (12:00, well
/// within max_lateness) is recorded as skipped, no sweep enqueued, and `lifecycle schedule`
/// says so; the schedule fires from its next tick (12:10) on.
async fn the_first_start_skips_a_tick_from_before_it(backend: Backend) {
    let adjust = |settings: &mut lifecycle::config::Settings| {
        settings.schedule.max_lateness_secs = 3600;
        settings.schedule.sweeps.insert(
            "prune".into(),
            SweepSchedule {
                cron: Some("*/10 * * * *".into()),
                time_zone: None,
            },
        );
    };
    let mut env = TestEnv::start_with(backend, adjust).await;
    env.clock.set(at("2026-03-10T12:05:00Z"));
    let noon = at("2026-03-10T12:00:00Z").timestamp_millis();
    env.start_worker();
    let started = Instant::now();
    while firing_rows(env.store(), "prune").await.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "no firing row");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Several scheduler rounds (20 ms apart) more: still nothing enqueued.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(firing_rows(env.store(), "prune").await, [(noon, None)]);
    assert!(
        jobs_of_kind(env.store(), "sweep::prune_job_history")
            .await
            .is_empty()
    );
    let last = firings::last_firing(env.store(), "prune")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.outcome.as_deref(), Some("skipped (first start)"));

    let output = lifecycle_command(&env)
        .arg("schedule")
        .env(schedule_variable("prune", "cron"), "*/10 * * * *")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("tick 2026-03-10 12:00:00 +00:00: skipped (first start)"),
        "{stdout}"
    );

    env.clock.set(at("2026-03-10T12:10:00Z"));
    let started = Instant::now();
    let job = loop {
        if let Some((_, Some(job))) = firing_rows(env.store(), "prune").await.last() {
            break *job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "12:10 did not fire"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(env.wait_for(job).await.state, "done");
    let jobs = jobs_of_kind(env.store(), "sweep::prune_job_history").await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(payload_at(&jobs[0].1), at("2026-03-10T12:10:00Z"));
}

on_both_backends!(
    a_firing_across_a_dst_change_fires_once,
    the_first_start_skips_a_tick_from_before_it,
    after_downtime_one_catch_up_run,
    three_processes_fire_each_tick_once,
    the_schedule_command_lists_each_sweep,
);
