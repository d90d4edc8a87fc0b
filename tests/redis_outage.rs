//! Redis losing everything in the middle of a run: a `FLUSHALL`, then a restart without
//! persistence (every connection dropped and the data gone). The database is the ledger:
//! every accepted job still completes, and each is applied once (the failure counters count
//! every job exactly once) and emails once.
//!
//! Alone in its test binary: `FLUSHALL` empties the whole Redis, so no other test may run
//! beside it (cargo runs test binaries one after another).

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestEnv, seed_world};
use lifecycle::store::users;

const AGENTS: usize = 10;
const FAILURES_EACH: usize = 200;

const DONE_LOGINS: &str = "SELECT COUNT(*) FROM jobs WHERE kind = 'user::record_login' AND state = 'done' AND account_id = $1";
const APPLIED_LOGINS: &str = "SELECT COUNT(*) FROM applied_jobs a JOIN jobs j ON j.id = a.job_id
     WHERE j.kind = 'user::record_login' AND j.account_id = $1";

async fn redis_command(command: &mut redis::Cmd) {
    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: redis::Value = command.query_async(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_completes_once_through_a_flush_and_a_restart() {
    let mut env = TestEnv::start(Backend::PostgresRedis).await;
    let world = seed_world(&env, 1).await;
    let agents = common::enqueue_failed_logins(&env, &world, AGENTS, FAILURES_EACH).await;
    let total = (AGENTS * FAILURES_EACH) as i64;

    env.start_worker();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut flushed = false;
    let mut restarted = false;
    loop {
        let done = env.scalar(DONE_LOGINS, world.account).await;
        if done == total {
            break;
        }
        assert!(Instant::now() < deadline, "{done} of {total} done");
        if !flushed && done >= total * 3 / 10 {
            flushed = true;
            redis_command(&mut redis::cmd("FLUSHALL")).await;
        }
        if flushed && !restarted && done >= total * 6 / 10 {
            restarted = true;
            // A restart without persistence: every client cut off, nothing kept.
            redis_command(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal")).await;
            redis_command(&mut redis::cmd("FLUSHALL")).await;
        }
        // Time moves on, so the reconciler's grace for fresh jobs passes.
        env.clock.advance(chrono::Duration::milliseconds(500));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(flushed && restarted, "both outages happened mid-run");

    // Each job applied once: the counters hold exactly the failures reported.
    assert_eq!(env.scalar(APPLIED_LOGINS, world.account).await, total);
    let mut tx = env.store().begin_read().await.unwrap();
    for agent in &agents {
        let user = users::find(&mut tx, *agent).await.unwrap().unwrap();
        assert_eq!(user.failed_logins as usize, FAILURES_EACH, "user {agent}");
        assert_eq!(user.status, "locked");
    }
    tx.commit().await.unwrap();
    // One lock notice per agent, none twice.
    env.mail(AGENTS).await;
    let settle_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle_until {
        env.clock.advance(chrono::Duration::milliseconds(500));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.sink.count(), AGENTS);
}
