//! The ReleaseDueLicenses and PruneJobHistory sweeps: what they change, what they leave,
//! a release racing a ReactivateUser that reclaims the seat, and the `lifecycle sweep`
//! dry-run changing nothing. On both backends.

mod common;

use std::process::Output;

use chrono::{DateTime, Duration, Utc};
use common::process::lifecycle_command;
use common::{Backend, TestEnv, World, request, seed_world};
use lifecycle::demo::crm_data;
use lifecycle::store::{Store, ledger, licenses, schedule as firings, users};
use lifecycle_jobs::{Actor, PruneJobHistory, ReactivateUser, ReleaseDueLicenses};

const ROUNDS: usize = 30;

const RELEASED_ROWS: &str = "SELECT COUNT(*) FROM audit_log
     WHERE entity = 'salesperson_license' AND entity_id = $1 AND action = 'released'";
const RECLAIMED_ROWS: &str = "SELECT COUNT(*) FROM audit_log
     WHERE entity = 'salesperson_license' AND entity_id = $1 AND action = 'reclaimed'";
const ACTIVATED_ROWS: &str = "SELECT COUNT(*) FROM audit_log
     WHERE entity = 'salesperson_license' AND entity_id = $1 AND action = 'activated'";
const AUDIT_ROWS: &str = "SELECT COUNT(*) FROM audit_log WHERE id > $1";

/// A deactivated salesperson of `world` whose license is `releasing` until `release_at`
/// (or `active` when `None`). Returns (user, license).
async fn salesperson(
    env: &TestEnv,
    world: &World,
    email: &str,
    release_at: Option<DateTime<Utc>>,
) -> (i64, i64) {
    let mut tx = env.tx().await;
    let user = crm_data::user(
        &mut tx,
        &crm_data::NewUser {
            account_id: world.account,
            role_id: world.agent_role,
            first_name: "Gone",
            last_name: "Agent",
            email,
            country: "ES",
            status: if release_at.is_some() {
                "deactivated"
            } else {
                "active"
            },
        },
        env.clock.now(),
    )
    .await
    .unwrap();
    let license = crm_data::license(&mut tx, world.account, user, "ES", env.clock.now())
        .await
        .unwrap();
    if let Some(release_at) = release_at {
        assert!(
            licenses::start_releasing(&mut tx, license, release_at)
                .await
                .unwrap()
        );
    }
    tx.commit().await.unwrap();
    (user, license)
}

async fn state_of(env: &TestEnv, license: i64) -> String {
    let mut tx = env.tx().await;
    let row = licenses::find(&mut tx, license).await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    row.state
}

fn sweep(env: &TestEnv, args: &[&str]) -> Output {
    let output = lifecycle_command(env)
        .arg("sweep")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Only `releasing` licenses due by the tick (and by the clock) are freed, in every
/// account, each audited once under the sweep's job; a rerun frees nothing more; the
/// dry-run lists exactly those and changes nothing.
async fn release_frees_only_due_licenses(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let now = env.clock.now();
    let acme = seed_world(&env, 10).await;
    let other = seed_world(&env, 10).await;
    let (_, due) = salesperson(&env, &acme, "due@acme.test", Some(now - Duration::hours(1))).await;
    let (_, exact) = salesperson(&env, &acme, "exact@acme.test", Some(now)).await;
    let (_, later) = salesperson(
        &env,
        &acme,
        "later@acme.test",
        Some(now + Duration::hours(1)),
    )
    .await;
    let (_, active) = salesperson(&env, &acme, "active@acme.test", None).await;
    let (_, elsewhere) = salesperson(
        &env,
        &other,
        "due@other.test",
        Some(now - Duration::days(3)),
    )
    .await;

    // The dry-run, as of the test's clock: the three due, nothing changed.
    let audit_before = env.scalar(AUDIT_ROWS, 0).await;
    let at = now.to_rfc3339();
    let listed = json(&sweep(
        &env,
        &["release-licenses", "--dry-run", "--json", "--at", &at],
    ));
    assert_eq!(listed["dry_run"], true);
    assert_eq!(listed["changed"], 3);
    let ids: Vec<i64> = listed["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|license| license["license_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [due, exact, elsewhere]);
    let text = sweep(&env, &["release-licenses", "--dry-run", "--at", &at]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("dry run: 3 licenses would be released"),
        "{text}"
    );
    for license in [due, exact, later, elsewhere] {
        assert_eq!(state_of(&env, license).await, "releasing");
    }
    assert_eq!(env.scalar(AUDIT_ROWS, 0).await, audit_before);

    // A tick later than the clock frees nothing early.
    let early = env
        .run(&ReleaseDueLicenses {
            at: now + Duration::hours(2),
        })
        .await;
    assert_eq!(early.state, "done");
    assert_eq!(state_of(&env, later).await, "releasing");

    for license in [due, exact, elsewhere] {
        assert_eq!(state_of(&env, license).await, "released");
        assert_eq!(env.scalar(RELEASED_ROWS, license).await, 1);
    }
    assert_eq!(state_of(&env, active).await, "active");
    assert_eq!(env.scalar(RELEASED_ROWS, later).await, 0);
    let stamped: i64 = env
        .scalar(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'released' AND account_id = $1",
            other.account,
        )
        .await;
    assert_eq!(stamped, 1, "audited in the license's own account");

    // A rerun (a retry, the next night) frees nothing and audits nothing.
    let audit_after = env.scalar(AUDIT_ROWS, 0).await;
    assert_eq!(env.run(&ReleaseDueLicenses { at: now }).await.state, "done");
    assert_eq!(env.scalar(AUDIT_ROWS, 0).await, audit_after);

    // A bad instant is refused naming the argument, and changes nothing.
    let refused = lifecycle_command(&env)
        .args(["sweep", "release-licenses", "--at", "tomorrow"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--at"), "{stderr}");
    assert_eq!(state_of(&env, later).await, "releasing");

    // Once its instant has come, the last one goes, through the command, which enqueues the
    // sweep (due by the command's clock, the real one, which the worker's clock is set to).
    env.stop_worker().await;
    let later_at = (now + Duration::hours(1)).to_rfc3339();
    let output = sweep(&env, &["release-licenses", "--at", &later_at]);
    let id: uuid::Uuid = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    env.clock.set(Utc::now());
    assert_eq!(env.wait_for(id).await.state, "done");
    assert_eq!(state_of(&env, later).await, "released");
}

/// ReactivateUser (reclaiming the user's `releasing` seat) and the release sweep, due at
/// the same instant, fetched together: whichever wins, the rows tell the truth. A license
/// the reactivation reclaimed is `active`, with no "released" row (the sweep left it
/// alone); one the sweep freed first is `released`, once, and the user took a new seat.
async fn a_reclaim_racing_the_sweep_is_left_alone(backend: Backend) {
    let mut env = TestEnv::start_with(backend, |settings| settings.queue.concurrency = 8).await;
    env.start_worker();
    const USERS: usize = 4;
    let (mut reclaimed_rounds, mut released_rounds) = (0, 0);
    for round in 0..ROUNDS {
        let world = seed_world(&env, USERS as i32).await;
        let release_at = env.clock.now() + Duration::hours(1);
        let mut held = Vec::new();
        for n in 0..USERS {
            let email = format!("r{round}x{n}@acme.test");
            held.push(salesperson(&env, &world, &email, Some(release_at)).await);
        }
        env.clock.set(release_at);
        let mut requests: Vec<_> = held
            .iter()
            .map(|(user, _)| {
                request(&ReactivateUser {
                    account_id: world.account,
                    user_id: *user,
                    actor: Actor::User(world.admin),
                    license_country: Some("ES".into()),
                })
            })
            .collect();
        // The sweep among them: first, in the middle, last.
        let position = [0, USERS / 2, USERS][round % 3];
        requests.insert(position, request(&ReleaseDueLicenses { at: release_at }));
        let enqueued = env.app.queue.enqueue_batch(requests).await.unwrap();
        for job in &enqueued {
            let record = env.wait_for(job.id).await;
            assert_eq!(record.state, "done", "round {round}: {record:?}");
        }

        for (user, license) in &held {
            let context = format!("round {round}, user {user}, license {license}");
            let mut tx = env.tx().await;
            let status = users::find(&mut tx, *user).await.unwrap().unwrap().status;
            let original = licenses::find(&mut tx, *license).await.unwrap().unwrap();
            let live = licenses::live_for_user(&mut tx, *user).await.unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(status, "active", "{context}");
            let live = live.unwrap_or_else(|| panic!("{context}: reactivated, yet no seat"));
            assert_eq!(live.state, "active", "{context}");
            let reclaimed = env.scalar(RECLAIMED_ROWS, *license).await;
            let released = env.scalar(RELEASED_ROWS, *license).await;
            match original.state.as_str() {
                "active" => {
                    reclaimed_rounds += 1;
                    assert_eq!(live.id, *license, "{context}");
                    assert_eq!((reclaimed, released), (1, 0), "{context}: reclaimed");
                }
                "released" => {
                    released_rounds += 1;
                    assert_eq!((reclaimed, released), (0, 1), "{context}: released");
                    assert_ne!(live.id, *license, "{context}");
                    assert_eq!(env.scalar(ACTIVATED_ROWS, live.id).await, 1, "{context}");
                }
                other => panic!("{context}: the license ended {other}"),
            }
        }
    }
    println!("{backend:?}: {reclaimed_rounds} reclaimed first, {released_rounds} released first");
}

/// PruneJobHistory deletes the jobs finished more than the retention before its tick, and
/// only those; the dry-run counts them and deletes nothing.
async fn prune_deletes_only_jobs_past_the_retention(backend: Backend) {
    let mut env = TestEnv::start_with(backend, |settings| settings.queue.retention_days = 14).await;
    let mut old = Vec::new();
    for _ in 0..3 {
        old.push(env.run(&lifecycle_jobs::Noop { account_id: 1 }).await.id);
    }
    env.clock.advance(Duration::days(10));
    let recent = env.run(&lifecycle_jobs::Noop { account_id: 1 }).await.id;
    env.clock.advance(Duration::days(5));
    let now = env.clock.now().to_rfc3339();
    let total = ledger::count_all(env.store()).await.unwrap();

    let counted = json(&sweep(
        &env,
        &["prune", "--dry-run", "--json", "--at", &now],
    ));
    assert_eq!(
        (counted["dry_run"].as_bool(), counted["changed"].as_i64()),
        (Some(true), Some(3))
    );
    let text = sweep(&env, &["prune", "--dry-run", "--at", &now]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("3 finished jobs would be pruned"), "{text}");
    assert!(text.contains("nothing changed"), "{text}");
    assert_eq!(ledger::count_all(env.store()).await.unwrap(), total);

    // The retention counts back from the tick: a tick of 5 days ago prunes nothing.
    let early = env
        .run(&PruneJobHistory {
            at: env.clock.now() - Duration::days(5),
        })
        .await;
    assert_eq!(early.state, "done");
    assert_eq!(ledger::count_all(env.store()).await.unwrap(), total + 1);

    // Firings: two of 'prune' and one of 'release_licenses' past the retention, one recent.
    let mut tx = env.tx().await;
    let old_tick = (env.clock.now() - Duration::days(20)).timestamp_millis();
    for (schedule, tick) in [
        ("prune", old_tick),
        ("prune", old_tick + 3_600_000),
        ("prune", env.clock.now().timestamp_millis()),
        ("release_licenses", old_tick),
    ] {
        firings::claim_tick(&mut tx, schedule, tick, env.clock.now())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let prune = env
        .run(&PruneJobHistory {
            at: env.clock.now(),
        })
        .await;
    assert_eq!(prune.state, "done");
    let kept: Vec<(String, i64)> = {
        const SQL: &str =
            "SELECT schedule, tick_at_ms FROM schedule_firings ORDER BY schedule, tick_at_ms";
        match env.store() {
            Store::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await,
            Store::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await,
        }
        .unwrap()
    };
    assert_eq!(
        kept,
        [
            ("prune".to_string(), env.clock.now().timestamp_millis()),
            ("release_licenses".to_string(), old_tick),
        ],
        "past the retention, all but each sweep's latest firing go"
    );
    for id in old {
        assert!(ledger::get(env.store(), id).await.unwrap().is_none());
    }
    assert!(ledger::get(env.store(), recent).await.unwrap().is_some());
    assert!(ledger::get(env.store(), early.id).await.unwrap().is_some());
}

/// Without `--dry-run`, `sweep release-licenses` and `sweep prune` enqueue their sweep's job
/// (its id printed, its tick the `--at` given) and change nothing themselves; the worker's
/// run of each frees the due license and prunes the old job. `--json` is the dry-run's.
async fn the_cli_enqueues_release_and_prune(backend: Backend) {
    let mut env = TestEnv::start_with(backend, |settings| settings.queue.retention_days = 14).await;
    let now = env.clock.now();
    let acme = seed_world(&env, 10).await;
    let (_, due) = salesperson(&env, &acme, "due@acme.test", Some(now - Duration::hours(1))).await;
    let old = env.run(&lifecycle_jobs::Noop { account_id: 1 }).await.id;
    env.stop_worker().await;
    env.clock.advance(Duration::days(15));
    let at = env.clock.now();

    let mut enqueued = Vec::new();
    for (command, kind) in [
        ("release-licenses", "sweep::release_due_licenses"),
        ("prune", "sweep::prune_job_history"),
    ] {
        let output = sweep(&env, &[command, "--at", &at.to_rfc3339()]);
        let id: uuid::Uuid = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|error| panic!("{command} prints the job id: {error}"));
        let job = env.job(id).await;
        assert_eq!((job.kind.as_str(), job.state.as_str()), (kind, "queued"));
        let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap();
        let tick: DateTime<Utc> = serde_json::from_value(payload["at"].clone()).unwrap();
        assert_eq!(tick, at, "{command}: the tick is the --at given");
        enqueued.push(id);
    }
    assert_eq!(
        state_of(&env, due).await,
        "releasing",
        "nothing changed yet"
    );
    assert!(ledger::get(env.store(), old).await.unwrap().is_some());

    // The jobs are due by the command's clock (the real one): the worker's is set to it.
    env.clock.set(Utc::now());
    for id in enqueued {
        assert_eq!(env.wait_for(id).await.state, "done");
    }
    assert_eq!(state_of(&env, due).await, "released");
    assert_eq!(env.scalar(RELEASED_ROWS, due).await, 1);
    assert!(
        ledger::get(env.store(), old).await.unwrap().is_none(),
        "pruned"
    );

    let refused = lifecycle_command(&env)
        .args(["sweep", "prune", "--json"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--dry-run"));
}

on_both_backends!(
    release_frees_only_due_licenses,
    the_cli_enqueues_release_and_prune,
    a_reclaim_racing_the_sweep_is_left_alone,
    prune_deletes_only_jobs_past_the_retention,
);
