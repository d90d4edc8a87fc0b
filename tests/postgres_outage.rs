//! PostgreSQL dropping every connection in the middle of a run (`pg_terminate_backend` on
//! all of the test database's sessions, three times): the workers reconnect and complete
//! every job, each applied once.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestEnv, seed_world};
use lifecycle::store::users;
use sqlx::Connection;

const AGENTS: usize = 10;
const FAILURES_EACH: usize = 100;

const DONE_LOGINS: &str = "SELECT COUNT(*) FROM jobs
     WHERE kind = 'user::record_login' AND state = 'done' AND account_id = $1";

/// Ends every session of the test's database but the caller's own.
async fn terminate_every_connection(env: &TestEnv) -> i64 {
    let database: String = match env.store() {
        lifecycle::store::Store::Postgres(pool) => {
            sqlx::query_scalar("SELECT current_database()::text")
                .fetch_one(pool)
                .await
                .unwrap()
        }
        lifecycle::store::Store::Sqlite(_) => unreachable!("PostgreSQL only"),
    };
    let mut admin = sqlx::PgConnection::connect(&common::postgres_url())
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = $1 AND pid <> pg_backend_pid()) AS ended",
    )
    .bind(database)
    .fetch_one(&mut admin)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_reconnect_and_complete_everything_once() {
    let mut env = TestEnv::start(Backend::PostgresRedis).await;
    let world = seed_world(&env, 1).await;
    let agents = common::enqueue_failed_logins(&env, &world, AGENTS, FAILURES_EACH).await;
    let total = (AGENTS * FAILURES_EACH) as i64;

    env.start_worker();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut outages = 0;
    let mut ended_sessions = 0;
    loop {
        // Reading may itself meet a terminated connection: look again.
        let Ok(done) = tokio::time::timeout(
            Duration::from_secs(5),
            env.scalar_opt(DONE_LOGINS, world.account),
        )
        .await
        else {
            continue;
        };
        let done = done.unwrap_or(0);
        if done == total {
            break;
        }
        if Instant::now() >= deadline {
            let running = env
                .scalar_opt(
                    "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND account_id = $1",
                    world.account,
                )
                .await;
            let queued = env
                .scalar_opt(
                    "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND account_id = $1",
                    world.account,
                )
                .await;
            panic!("{done} of {total} done; running {running:?}, queued {queued:?}");
        }
        if outages < 3 && done >= total * (outages + 1) / 4 {
            outages += 1;
            ended_sessions += terminate_every_connection(&env).await;
        }
        env.clock.advance(chrono::Duration::milliseconds(500));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(outages, 3, "three outages mid-run");
    assert!(ended_sessions > 0, "the outages ended live sessions");

    let mut tx = env.store().begin_read().await.unwrap();
    for agent in &agents {
        let user = users::find(&mut tx, *agent).await.unwrap().unwrap();
        assert_eq!(
            user.failed_logins as usize, FAILURES_EACH,
            "user {agent}: each failure once"
        );
    }
    tx.commit().await.unwrap();
}
