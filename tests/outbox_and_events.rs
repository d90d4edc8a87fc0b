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

on_both_backends!(
    committed_outbox_rows_become_one_job_each_and_rolled_back_ones_none,
    each_completed_change_is_published_once,
);
