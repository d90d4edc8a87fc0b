//! Worker processes: every worker of `run --workers N` runs jobs; a process's heartbeat
//! tells the others it is alive, and when it stops beating its jobs go back at once; every
//! attempt that did not succeed says why it ended. On both backends.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestEnv, UNEXPLAINED_ATTEMPTS, noop_requests};
use lifecycle::queue::lifeline::ProcessIdentity;
use lifecycle::store::workers::{self, NewProcess};
use uuid::Uuid;

/// `noop_requests` puts every job in account 1.
const ACCOUNT: i64 = 1;

async fn wait_until(env: &TestEnv, sql: &'static str, expected: i64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let count = env.scalar(sql, ACCOUNT).await;
        if count == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {count} of {expected}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const DONE: &str = "SELECT COUNT(*) FROM jobs WHERE state = 'done' AND account_id = $1";
const RUNNING: &str = "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND account_id = $1";
const ERRORS: &str = "SELECT COUNT(*) FROM job_attempt_errors e JOIN jobs j ON j.id = e.job_id
     WHERE j.account_id = $1";

/// `run --workers 3` with a small batch: every worker takes deliveries, none is stranded
/// (before, only one worker of N read its channel and the others' jobs waited out the
/// visibility timeout), and each job ran once.
async fn three_workers_drain_3000_jobs_with_none_left_running(backend: Backend) {
    let mut env = TestEnv::start_with(backend, |settings| {
        settings.queue.concurrency = 10;
        settings.queue.batch_size = 10;
    })
    .await;
    env.app
        .queue
        .enqueue_batch(noop_requests(3_000))
        .await
        .unwrap();
    env.start_workers(3);
    wait_until(&env, DONE, 3_000, "done").await;
    assert_eq!(env.scalar(RUNNING, ACCOUNT).await, 0);
    let once = "SELECT COUNT(*) FROM jobs WHERE attempts = 1 AND account_id = $1";
    assert_eq!(env.scalar(once, ACCOUNT).await, 3_000, "each job ran once");
    assert_eq!(env.scalar(ERRORS, ACCOUNT).await, 0);
    let live = workers::live(env.store(), 0).await.unwrap();
    assert_eq!(live.len(), 1, "one process row, beating");
    assert_eq!(live[0].workers, 3);
    env.stop_worker().await;
    let live = workers::live(env.store(), 0).await.unwrap();
    assert!(live.is_empty(), "the process closed its row at shutdown");
}

/// Jobs a process claimed and never started (it fetches ahead) are given back at shutdown
/// with their attempt uncounted: no attempt is left without an end.
async fn claims_never_started_are_given_back_uncounted(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let enqueued = env.app.queue.enqueue_batch(noop_requests(5)).await.unwrap();
    let identity = ProcessIdentity::new();
    let mut reader = env.app.queue.reader(identity.consumer(0, 0)).await.unwrap();
    let mut claimed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while claimed.len() < 5 {
        assert!(Instant::now() < deadline, "the reader claims the jobs");
        claimed.extend(reader.next_batch(5).await.unwrap());
    }
    assert_eq!(env.scalar(RUNNING, ACCOUNT).await, 5);
    let ids: Vec<Uuid> = claimed.iter().map(|delivery| delivery.job.id).collect();
    env.app.queue.leave(&identity, &ids).await.unwrap();
    for enqueued in &enqueued {
        let job = env.job(enqueued.id).await;
        assert_eq!((job.state.as_str(), job.attempts), ("queued", 0));
    }
    env.start_worker();
    wait_until(&env, DONE, 5, "done").await;
    for enqueued in &enqueued {
        assert_eq!(env.job(enqueued.id).await.attempts, 1);
    }
    assert_eq!(env.scalar(UNEXPLAINED_ATTEMPTS, ACCOUNT).await, 0);
    assert_eq!(env.scalar(ERRORS, ACCOUNT).await, 0);
}

/// A job held past the visibility timeout (its worker hung) goes back with the reason
/// recorded for the attempt it spent.
async fn a_claim_past_the_visibility_timeout_says_why_it_ended(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let enqueued = env.enqueue(noop_requests(1).remove(0)).await;
    let mut reader = env.app.queue.reader("hung/0-0".into()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reader.next_batch(1).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the reader claims the job");
    }
    let timeout = env.app.settings.queue.visibility_timeout_secs as i64;
    env.clock.advance(chrono::Duration::seconds(timeout + 1));
    assert_eq!(env.app.queue.requeue_stale().await.unwrap(), 1);
    let job = env.wait_for(enqueued.id).await;
    assert_eq!((job.state.as_str(), job.attempts), ("done", 2));
    let errors = attempt_errors(&env, enqueued.id).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, 1);
    assert!(
        errors[0].1.contains("visibility timeout") && errors[0].1.contains("hung/0-0"),
        "{errors:?}"
    );
    assert_eq!(env.scalar(UNEXPLAINED_ATTEMPTS, ACCOUNT).await, 0);
}

/// A process that stopped beating (killed: its row is old) holds a job; the next process to
/// beat closes its row and puts the job back at once, the attempt's end recorded.
async fn a_silent_process_has_its_jobs_put_back_with_the_reason(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let enqueued = env.enqueue(noop_requests(1).remove(0)).await;
    let dead = ProcessIdentity::new();
    let long_ago = chrono::Utc::now().timestamp_millis() - 120_000;
    workers::register(
        env.store(),
        &NewProcess {
            id: &dead.id,
            host: &dead.host,
            pid: 1,
            workers: 1,
            concurrency: 10,
            now_ms: long_ago,
        },
    )
    .await
    .unwrap();
    let mut reader = env.app.queue.reader(dead.consumer(0, 0)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reader.next_batch(1).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the dead process claims the job");
    }
    drop(reader);
    // Far less than the visibility timeout: only the heartbeat can tell it is dead.
    let job = env.wait_for(enqueued.id).await;
    assert_eq!((job.state.as_str(), job.attempts), ("done", 2));
    let errors = attempt_errors(&env, enqueued.id).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].1.contains("stopped answering") && errors[0].1.contains(&dead.id),
        "{errors:?}"
    );
    let reason: Option<String> = match env.store() {
        lifecycle::store::Store::Postgres(pool) => {
            sqlx::query_scalar("SELECT stop_reason FROM worker_processes WHERE id = $1")
                .bind(&dead.id)
                .fetch_one(pool)
                .await
        }
        lifecycle::store::Store::Sqlite(pool) => {
            sqlx::query_scalar("SELECT stop_reason FROM worker_processes WHERE id = $1")
                .bind(&dead.id)
                .fetch_one(pool)
                .await
        }
    }
    .unwrap();
    assert_eq!(reason.as_deref(), Some("heartbeat lost"));
    assert_eq!(env.scalar(UNEXPLAINED_ATTEMPTS, ACCOUNT).await, 0);
}

async fn attempt_errors(env: &TestEnv, job_id: Uuid) -> Vec<(i32, String)> {
    let sql = "SELECT attempt, error FROM job_attempt_errors WHERE job_id = $1 ORDER BY attempt";
    match env.store() {
        lifecycle::store::Store::Postgres(pool) => {
            sqlx::query_as(sql).bind(job_id).fetch_all(pool).await
        }
        lifecycle::store::Store::Sqlite(pool) => {
            sqlx::query_as(sql).bind(job_id).fetch_all(pool).await
        }
    }
    .unwrap()
}

on_both_backends!(
    three_workers_drain_3000_jobs_with_none_left_running,
    claims_never_started_are_given_back_uncounted,
    a_claim_past_the_visibility_timeout_says_why_it_ended,
    a_silent_process_has_its_jobs_put_back_with_the_reason,
);
