//! The transactional outbox (a producer's row becomes exactly one job if its transaction
//! commits, none if it rolls back) and the events (one per completed change, none for a
//! refused job or one that changed nothing). On both backends: events on the Redis stream
//! in production, in the `events` table on the embedded default.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestEnv, World, seed_agent, seed_world};
use lifecycle::store::{events, outbox, users};
use lifecycle_jobs::{Actor, DeactivateUser, RecordActivity, RecordLogin};

/// Waits until the outbox row is relayed; returns its job id or its error.
async fn relayed(env: &mut TestEnv, id: i64) -> outbox::RelayedRow {
    env.start_worker();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut tx = env.store().begin_read().await.unwrap();
        let row = outbox::find(&mut tx, id).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        if row.relayed {
            return row;
        }
        assert!(Instant::now() < deadline, "outbox row {id} not relayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn failed_login(world: &World, user_id: i64) -> String {
    serde_json::to_string(&RecordLogin {
        account_id: world.account,
        user_id,
        succeeded: false,
        at: None,
    })
    .unwrap()
}

async fn committed_outbox_rows_become_one_job_each_and_rolled_back_ones_none(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let ana = seed_agent(&env, &world, "Ana", "en").await;

    // A producer's transaction: its own change and two outbox rows, committed.
    let mut tx = env.tx().await;
    let first = outbox::insert(&mut tx, "record-login", &failed_login(&world, ana), None)
        .await
        .unwrap();
    let second = outbox::insert(
        &mut tx,
        "user::record_login",
        &failed_login(&world, ana),
        Some("crm-login-77"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // Another one rolled back: its row never existed.
    let mut tx = env.tx().await;
    outbox::insert(&mut tx, "record-login", &failed_login(&world, ana), None)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    // A row whose payload is invalid: relayed as refused, with the field, no job.
    let mut tx = env.tx().await;
    let bad = outbox::insert(&mut tx, "record-login", r#"{"account_id": 1}"#, None)
        .await
        .unwrap();
    let unknown = outbox::insert(&mut tx, "launch-rockets", "{}", None)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    for id in [first, second] {
        let row = relayed(&mut env, id).await;
        assert_eq!(row.error, None);
        let job = env.wait_for(row.job_id.expect("a job")).await;
        assert_eq!(job.state, "done");
    }
    let second_id = relayed(&mut env, second).await.job_id.unwrap();
    let second_job = env.job(second_id).await;
    assert_eq!(second_job.idempotency_key.as_deref(), Some("crm-login-77"));
    for (id, reason) in [(bad, "user_id"), (unknown, "kind")] {
        let row = relayed(&mut env, id).await;
        assert_eq!(row.job_id, None);
        assert!(row.error.unwrap().contains(reason));
    }

    // Each committed row ran once, the rolled-back one never: two failures counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tx = env.store().begin_read().await.unwrap();
    assert_eq!(
        users::find(&mut tx, ana)
            .await
            .unwrap()
            .unwrap()
            .failed_logins,
        2
    );
    tx.commit().await.unwrap();
    let logins = "SELECT COUNT(*) FROM jobs WHERE kind = 'user::record_login' AND account_id = $1";
    assert_eq!(env.scalar(logins, world.account).await, 2);
}

/// The events a subscriber sees: the Redis stream in production, the table otherwise.
async fn published_events(env: &TestEnv, world: &World, at_least: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events: Vec<serde_json::Value> = match env.backend {
            Backend::PostgresRedis => {
                let client = redis::Client::open(common::redis_url()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                    .arg(&env.app.settings.queue.events_stream)
                    .arg("-")
                    .arg("+")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                entries
                    .ids
                    .iter()
                    .map(|entry| {
                        let json: String = entry.get("event").expect("an event field");
                        serde_json::from_str(&json).expect("event JSON")
                    })
                    .collect()
            }
            Backend::Sqlite => {
                let mut tx = env.store().begin_read().await.unwrap();
                let rows = events::for_account(&mut tx, world.account).await.unwrap();
                tx.commit().await.unwrap();
                rows.iter()
                    .map(|row| serde_json::to_value(row).unwrap())
                    .collect()
            }
        };
        if events.len() >= at_least {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{} events of {at_least}: {events:?}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn each_completed_change_is_published_once(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let bea = seed_agent(&env, &world, "Bea", "en").await;
    let carl = seed_agent(&env, &world, "Carl", "en").await;

    // Two changes.
    let deactivate = |user_id| DeactivateUser {
        account_id: world.account,
        user_id,
        actor: Actor::User(world.admin),
        reassign_to: None,
        allow_reactivation_on_purchase: false,
        requested_at: None,
    };
    let first = env.run(&deactivate(bea)).await;
    assert_eq!(first.state, "done");
    let second = env.run(&deactivate(carl)).await;
    assert_eq!(second.state, "done");
    // A refused job (an agent may not deactivate the admin) and one that changed nothing
    // (activity of a deactivated user): no event.
    let refused = env
        .run(&DeactivateUser {
            actor: Actor::User(bea),
            ..deactivate(world.admin)
        })
        .await;
    assert_eq!(refused.state, "dead");
    let nothing = env
        .run(&RecordActivity {
            account_id: world.account,
            user_id: bea,
            source: lifecycle_jobs::ActivitySource::Api,
            at: None,
        })
        .await;
    assert_eq!(nothing.state, "done");
    // A redelivered change publishes nothing more.
    env.app.queue.retry_now(first.id).await.unwrap();
    assert_eq!(env.wait_for(first.id).await.state, "done");

    let events = published_events(&env, &world, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events_after = published_events(&env, &world, 2).await;
    assert_eq!(events_after.len(), events.len(), "nothing more published");
    assert_eq!(events.len(), 2, "{events:#?}");
    for (event, (job, user)) in events.iter().zip([(first.id, bea), (second.id, carl)]) {
        assert_eq!(event["kind"], "user::deactivate");
        assert_eq!(event["job_id"], job.to_string());
        assert_eq!(event["account_id"], world.account);
        assert_eq!(event["user_id"], user);
        assert!(event["at"].as_str().is_some());
        let changes = event["changes"].as_array().expect("changes");
        assert!(
            changes.iter().any(|change| change["entity"] == "user"
                && change["entity_id"] == user
                && change["action"] == "deactivated"),
            "{changes:?}"
        );
    }
}

/// The entries of the events stream, in stream order: (entry id, event).
async fn stream_entries(env: &TestEnv) -> Vec<(String, serde_json::Value)> {
    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&env.app.settings.queue.events_stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    entries
        .ids
        .iter()
        .map(|entry| {
            let json: String = entry.get("event").expect("an event field");
            (
                entry.id.clone(),
                serde_json::from_str(&json).expect("event JSON"),
            )
        })
        .collect()
}

/// Runs one statement with no parameter on the test's database (rows no store function
/// writes: the state a crash leaves).
async fn execute(env: &TestEnv, sql: &'static str) {
    match env.store() {
        lifecycle::store::Store::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        lifecycle::store::Store::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
    }
    .unwrap_or_else(|error| panic!("{sql}: {error}"));
}

const UNPUBLISHED: &str = "SELECT COUNT(*) FROM events WHERE published_at IS NULL AND id > $1";

/// A publisher that dies after its events reached the stream, before it marked them, and
/// the next publish: nothing is added twice. (On the embedded default there is no stream:
/// the table is the feed, and it stays as it was.)
async fn a_publish_repeated_after_its_mark_was_lost_adds_nothing(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let mut agents = Vec::new();
    for name in ["Bea", "Carl", "Dora"] {
        agents.push(seed_agent(&env, &world, name, "en").await);
    }
    let deactivate = |user_id| DeactivateUser {
        account_id: world.account,
        user_id,
        actor: Actor::User(world.admin),
        reassign_to: None,
        allow_reactivation_on_purchase: false,
        requested_at: None,
    };
    for &agent in &agents[..2] {
        assert_eq!(env.run(&deactivate(agent)).await.state, "done");
    }
    let before = published_events(&env, &world, 2).await;
    assert_eq!(before.len(), 2, "{before:#?}");
    env.stop_worker().await;
    assert_eq!(env.scalar(UNPUBLISHED, 0).await, 0);

    // The crash: the events are on the stream, their marks lost. Published again...
    execute(&env, "UPDATE events SET published_at = NULL").await;
    let added = env.app.queue.publish_events().await.unwrap();
    match backend {
        Backend::PostgresRedis => {
            assert_eq!(added, 0, "nothing added again");
            assert_eq!(env.scalar(UNPUBLISHED, 0).await, 0, "marked again");
        }
        // No stream: nothing publishes, the table is the feed.
        Backend::Sqlite => assert_eq!(added, 0),
    }
    let after = published_events(&env, &world, 2).await;
    assert_eq!(after, before, "no duplicate");

    // The next change comes out once, after them.
    assert_eq!(env.run(&deactivate(agents[2])).await.state, "done");
    let events = published_events(&env, &world, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events_after = published_events(&env, &world, 3).await;
    assert_eq!(events_after, events, "nothing more");
    assert_eq!(events.len(), 3, "{events:#?}");
    let users: Vec<i64> = events
        .iter()
        .map(|e| e["user_id"].as_i64().unwrap())
        .collect();
    assert_eq!(users, agents);
    if backend == Backend::PostgresRedis {
        let ids: Vec<String> = stream_entries(&env)
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            ids,
            ["0-1", "0-2", "0-3"],
            "entry ids follow the publication numbers"
        );
    }
}

/// Several publishers (three processes' queues on one database and one stream) publishing
/// while events are recorded concurrently, their commits out of id order: every event is on
/// the stream once, none missing, and each user's events in the order they were recorded.
/// Forty rounds, the invariant checked after each. On the embedded default the table is
/// the feed, and the same holds of it.
async fn concurrent_publishers_keep_the_stream_ordered_and_complete(backend: Backend) {
    const ROUNDS: i64 = 40;
    const RECORDERS: i64 = 8;
    const PER_RECORDER: i64 = 5;
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let settings = env.app.settings.clone();
    let mut queues = vec![env.app.queue.clone()];
    for _ in 0..2 {
        let store = lifecycle::store::Store::connect(settings.database.url.expose(), 4)
            .await
            .unwrap();
        queues.push(
            lifecycle::queue::Queue::connect(store, &settings.queue, env.clock.clone())
                .await
                .unwrap(),
        );
    }
    let publishes = env.app.queue.publishes_events();
    for round in 0..ROUNDS {
        let recording = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut publishers = Vec::new();
        for queue in &queues {
            let (queue, recording) = (queue.clone(), recording.clone());
            publishers.push(tokio::spawn(async move {
                while recording.load(std::sync::atomic::Ordering::SeqCst) {
                    queue.publish_events().await.expect("publish");
                    tokio::task::yield_now().await;
                }
            }));
        }
        let mut recorders = Vec::new();
        for recorder in 0..RECORDERS {
            let (store, clock) = (env.app.store.clone(), env.clock.clone());
            let (account, user) = (world.account, 1000 * (round + 1) + recorder);
            recorders.push(tokio::spawn(async move {
                for n in 0..PER_RECORDER {
                    let changes = serde_json::json!([
                        {"entity": "probe", "entity_id": n, "action": "recorded"}
                    ])
                    .to_string();
                    let now = clock.now();
                    let mut tx = store.begin().await.unwrap();
                    events::record(
                        &mut tx,
                        &events::NewEvent {
                            kind: "test::probe",
                            account_id: Some(account),
                            user_id: Some(user),
                            job_id: uuid::Uuid::now_v7(),
                            at: now,
                            changes: &changes,
                            published_at: (!publishes).then_some(now),
                        },
                    )
                    .await
                    .unwrap();
                    // Commits land out of id order: a lower id may show after a higher.
                    let pause = (user * 7 + n * 13) % 4;
                    tokio::time::sleep(Duration::from_millis(pause as u64)).await;
                    tx.commit().await.unwrap();
                }
            }));
        }
        for recorder in recorders {
            recorder.await.unwrap();
        }
        recording.store(false, std::sync::atomic::Ordering::SeqCst);
        for publisher in publishers {
            publisher.await.unwrap();
        }
        // What the publishers had not reached when recording stopped.
        for queue in &queues {
            queue.publish_events().await.unwrap();
        }

        let expected = ((round + 1) * RECORDERS * PER_RECORDER) as usize;
        let feed: Vec<serde_json::Value> = match backend {
            Backend::PostgresRedis => {
                let entries = stream_entries(&env).await;
                let ids: Vec<String> = entries.iter().map(|(id, _)| id.clone()).collect();
                let numbered: Vec<String> = (1..=entries.len()).map(|n| format!("0-{n}")).collect();
                assert_eq!(ids, numbered, "round {round}: consecutive entry ids");
                entries.into_iter().map(|(_, event)| event).collect()
            }
            Backend::Sqlite => published_events(&env, &world, expected).await,
        };
        assert_eq!(env.scalar(UNPUBLISHED, 0).await, 0, "round {round}");
        let event_ids: std::collections::BTreeSet<i64> = feed
            .iter()
            .map(|e| e["event_id"].as_i64().unwrap())
            .collect();
        assert_eq!(event_ids.len(), feed.len(), "round {round}: a duplicate");
        assert_eq!(feed.len(), expected, "round {round}: missing events");
        let all = env
            .scalar("SELECT COUNT(*) FROM events WHERE id > $1", 0)
            .await;
        assert_eq!(all as usize, expected, "round {round}");
        let mut last_seen = std::collections::HashMap::new();
        for event in &feed {
            let user = event["user_id"].as_i64().unwrap();
            let n = event["changes"][0]["entity_id"].as_i64().unwrap();
            let previous = last_seen.insert(user, n);
            assert_eq!(
                previous.map_or(0, |p| p + 1),
                n,
                "round {round}: user {user}'s events out of order"
            );
        }
    }
}

on_both_backends!(
    committed_outbox_rows_become_one_job_each_and_rolled_back_ones_none,
    each_completed_change_is_published_once,
    a_publish_repeated_after_its_mark_was_lost_adds_nothing,
    concurrent_publishers_keep_the_stream_ordered_and_complete,
);
