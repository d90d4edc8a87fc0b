//! The queue's promises on both transports: permanent failures are not retried, transient
//! ones are retried with growing delays up to the configured attempts, a worker that dies
//! holding jobs loses none of them, and a Redis that lost its data keeps being consumed.

mod common;

use std::time::Duration;

use common::{Backend, TestEnv};
use lifecycle::demo::crm_data::{self, NewUser};
use lifecycle::queue::{AfterCommit, EnqueueRequest};
use lifecycle::store::Tx;
use lifecycle_jobs::{Job, Noop, ReleaseLicense};

/// A license whose release is not due yet: ReleaseLicense fails transiently on it.
async fn license_not_yet_due(env: &TestEnv) -> (i64, i64) {
    let now = env.clock.now();
    let mut tx = env.tx().await;
    let account = common::utc_account(&mut tx, "Acme", now).await;
    let role = crm_data::role(&mut tx, account, "Rep", 1, false)
        .await
        .unwrap();
    let user = crm_data::user(
        &mut tx,
        &NewUser {
            account_id: account,
            role_id: role,
            first_name: "Ana",
            last_name: "Garcia",
            email: "ana@acme.test",
            country: "ES",
            status: "active",
        },
        now,
    )
    .await
    .unwrap();
    crm_data::license_pool(&mut tx, account, "ES", 1)
        .await
        .unwrap();
    let license = crm_data::license(&mut tx, account, user, "ES", now)
        .await
        .unwrap();
    lifecycle::store::licenses::start_releasing(&mut tx, license, now + chrono::Duration::days(30))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (account, license)
}

/// How the retry limit of the test's job kind (ReleaseLicense) is configured.
#[derive(Clone, Copy, Debug)]
enum Limit {
    /// `queue.max_attempts`, for every kind.
    Queue(u32),
    /// `[queue.kinds."license::release"]`, the queue's own limit left at 8.
    Kind(u32),
}

async fn transient_failures_retry_up_to_the_configured_attempts(backend: Backend) {
    for limit in [Limit::Queue(6), Limit::Kind(3), Limit::Kind(40)] {
        let mut env = TestEnv::start_with(backend, |settings| {
            settings.queue.max_attempts = 8;
            match limit {
                Limit::Queue(max_attempts) => {
                    settings.queue.max_attempts = max_attempts;
                    settings.queue.backoff_base_ms = 40;
                }
                Limit::Kind(max_attempts) => {
                    settings.queue.kinds.insert(
                        ReleaseLicense::NAME.to_string(),
                        lifecycle::config::KindRetry {
                            max_attempts: Some(max_attempts),
                            backoff_base_ms: Some(1),
                            backoff_cap_secs: Some(0),
                        },
                    );
                }
            }
        })
        .await;
        let max_attempts = match limit {
            Limit::Queue(n) | Limit::Kind(n) => n,
        };
        let (account, license) = license_not_yet_due(&env).await;
        let job = ReleaseLicense {
            account_id: account,
            license_id: license,
        };
        let enqueued = env
            .enqueue(EnqueueRequest::for_job(&job, None).unwrap())
            .await;
        let record = env
            .wait_for_with_clock_running(enqueued.id, chrono::Duration::milliseconds(5))
            .await;
        assert_eq!(record.state, "dead", "{limit:?}");
        assert_eq!(
            record.attempts, max_attempts as i32,
            "{limit:?}: exactly the configured attempts"
        );
        assert!(record.last_error.unwrap().contains("not due for release"));

        let errors = attempt_errors(&env, record.id).await;
        assert_eq!(errors.len(), max_attempts as usize, "one error per attempt");
        assert!(errors.iter().all(|(_, permanent, _)| !permanent));
        let attempts: Vec<i32> = errors.iter().map(|(attempt, _, _)| *attempt).collect();
        assert_eq!(attempts, (1..=max_attempts as i32).collect::<Vec<_>>());
        // Backoff: with a 40 ms base the fifth pause is at least 320 ms of clock time, the
        // first at most 40 ms (plus the worker's pick-up lag).
        let times: Vec<i64> = errors.iter().map(|(_, _, at)| *at).collect();
        if let Limit::Queue(_) = limit {
            let first_gap = times[1] - times[0];
            let last_gap = times[5] - times[4];
            assert!(last_gap >= 320, "delays grow: {times:?}");
            assert!(last_gap > 2 * first_gap, "delays grow: {times:?}");
        }
    }
}

async fn attempt_errors(env: &TestEnv, job: uuid::Uuid) -> Vec<(i32, bool, i64)> {
    let sql = "SELECT attempt, permanent, at_ms FROM job_attempt_errors WHERE job_id = $1 ORDER BY attempt";
    match env.store() {
        lifecycle::store::Store::Postgres(pool) => {
            sqlx::query_as(sql).bind(job).fetch_all(pool).await.unwrap()
        }
        lifecycle::store::Store::Sqlite(pool) => {
            sqlx::query_as(sql).bind(job).fetch_all(pool).await.unwrap()
        }
    }
}

async fn permanent_failures_are_not_retried(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let job = ReleaseLicense {
        account_id: 1,
        license_id: 424_242,
    };
    let record = env
        .run_job(EnqueueRequest::for_job(&job, None).unwrap())
        .await;
    assert_eq!(record.state, "dead");
    assert_eq!(record.attempts, 1);
    assert!(
        record
            .last_error
            .unwrap()
            .contains("license 424242 does not exist")
    );
    let errors = attempt_errors(&env, record.id).await;
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].0, errors[0].1), (1, true));
}

async fn jobs_held_by_a_dead_worker_are_taken_over(backend: Backend) {
    let mut env = TestEnv::start_with(backend, |settings| {
        settings.queue.visibility_timeout_secs = 1;
    })
    .await;
    let requests = common::noop_requests(20);
    let enqueued = env.app.queue.enqueue_batch(requests).await.unwrap();

    // A worker claims every job and dies without finishing any.
    let mut doomed = env.app.queue.reader("doomed-worker".into()).await.unwrap();
    let mut claimed = 0;
    while claimed < 20 {
        claimed += doomed.next_batch(20).await.unwrap().len();
    }
    drop(doomed);

    // Past the visibility timeout, another worker takes them over: none is lost.
    env.clock.advance(chrono::Duration::seconds(2));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for job in enqueued {
        let record = env.wait_for(job.id).await;
        assert_eq!(record.state, "done");
    }
}

async fn a_queue_wiped_while_running_keeps_being_consumed(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let noop = || EnqueueRequest::for_job(&Noop { account_id: 1 }, None).unwrap();
    let first = env.run_job(noop()).await;
    assert_eq!(first.state, "done");

    if backend == Backend::PostgresRedis {
        // Redis restarted empty: the stream and its consumer group are gone.
        let client = redis::Client::open(common::redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!(
                "{{lifecycle:{}}}*",
                env.app.settings.queue.namespace
            ))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!keys.is_empty());
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let second = env.run_job(noop()).await;
    assert_eq!(second.state, "done", "the consumer recovered");
}

/// `count` no-op jobs recorded as a handler's follow-ups are (`Queue::enqueue_all_in`) in
/// a transaction left open, and what to push once it commits.
async fn noops_in_open_transaction(env: &TestEnv, count: usize) -> (Tx, AfterCommit) {
    let mut tx = env.tx().await;
    let after_commit = env
        .app
        .queue
        .enqueue_all_in(&mut tx, common::noop_requests(count))
        .await
        .unwrap();
    (tx, after_commit)
}

/// Jobs recorded inside a transaction (a handler's follow-ups, `Queue::enqueue_all_in`)
/// that a reader is handed before the transaction ends. On PostgreSQL with Redis they are
/// pushed before the commit (their rows are written once, already marked pushed): the
/// reader finds no row yet, waits for the transaction, then takes every job it committed and
/// none it rolled back. On SQLite the claim waits for the write lock. Were the reader to
/// drop what it cannot see yet, the committed jobs would stay queued, marked pushed, and
/// never run.
async fn jobs_read_before_their_transaction_ends_wait_for_it(backend: Backend) {
    const JOBS: usize = 5;
    let env = TestEnv::start(backend).await;
    let mut reader = env.app.queue.reader("early-reader".into()).await.unwrap();
    for commit in [true, false] {
        let (tx, after_commit) = noops_in_open_transaction(&env, JOBS).await;
        let reading = tokio::spawn(async move {
            let batch = reader.next_batch(JOBS).await.unwrap();
            (reader, batch)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
        env.app.queue.push(after_commit).await.unwrap();
        let (back, mut delivered) = reading.await.unwrap();
        reader = back;
        // Whatever the first read missed, the next reads within two seconds would get.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline && delivered.len() < JOBS {
            delivered.extend(reader.next_batch(JOBS).await.unwrap());
        }
        let noops = env
            .scalar(
                "SELECT COUNT(*) FROM jobs WHERE kind = 'system::noop' AND account_id = $1",
                1,
            )
            .await;
        if commit {
            assert_eq!(delivered.len(), JOBS, "every committed job is delivered");
            assert!(delivered.iter().all(|delivery| delivery.job.attempts == 1));
            assert_eq!(noops, JOBS as i64);
            let running = env
                .scalar(
                    "SELECT COUNT(*) FROM jobs WHERE kind = 'system::noop' AND account_id = $1
                        AND state = 'running' AND locked_by = 'early-reader'",
                    1,
                )
                .await;
            assert_eq!(running, JOBS as i64, "claimed by the reader that waited");
        } else {
            assert!(
                delivered.is_empty(),
                "a rolled-back job is not run: {delivered:?}"
            );
            assert_eq!(
                noops, JOBS as i64,
                "the rolled-back jobs were never recorded"
            );
        }
    }
}

/// Handlers' follow-up jobs recorded and committed (or rolled back) while workers read
/// them, round after round: every committed job runs once, none is left queued.
async fn follow_ups_racing_the_workers_run_once(backend: Backend) {
    const ROUNDS: usize = 30;
    const JOBS: usize = 10;
    let mut env = TestEnv::start_with(backend, |settings| settings.queue.concurrency = 8).await;
    env.start_worker();
    let mut committed = 0;
    for round in 0..ROUNDS {
        let (tx, after_commit) = noops_in_open_transaction(&env, JOBS).await;
        // From no wait to long enough for the workers to read every entry first.
        tokio::time::sleep(Duration::from_millis((round % 6) as u64 * 5)).await;
        if round % 3 == 2 {
            tx.rollback().await.unwrap();
        } else {
            tx.commit().await.unwrap();
            committed += JOBS as i64;
        }
        env.app.queue.push(after_commit).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let done = env
                .scalar(
                    "SELECT COUNT(*) FROM jobs WHERE kind = 'system::noop' AND account_id = $1
                        AND state = 'done'",
                    1,
                )
                .await;
            if done == committed {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: {done} of {committed} committed jobs done"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let all = env
        .scalar(
            "SELECT COUNT(*) FROM jobs WHERE kind = 'system::noop' AND account_id = $1",
            1,
        )
        .await;
    assert_eq!(all, committed, "only the committed jobs exist");
    let once = env
        .scalar(
            "SELECT COUNT(*) FROM jobs WHERE kind = 'system::noop' AND account_id = $1 AND attempts = 1",
            1,
        )
        .await;
    assert_eq!(once, committed, "each ran in one attempt");
}

on_both_backends!(
    transient_failures_retry_up_to_the_configured_attempts,
    permanent_failures_are_not_retried,
    jobs_held_by_a_dead_worker_are_taken_over,
    a_queue_wiped_while_running_keeps_being_consumed,
    jobs_read_before_their_transaction_ends_wait_for_it,
    follow_ups_racing_the_workers_run_once,
);

/// Redis only: an entry that is not a job of ours is removed, not delivered forever, and
/// the jobs around it run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_stream_entry_is_removed_and_jobs_still_run() {
    let mut env = TestEnv::start(Backend::PostgresRedis).await;
    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = format!("{{lifecycle:{}}}:stream", env.app.settings.queue.namespace);
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("job")
        .arg("{not a job")
        .query_async(&mut conn)
        .await
        .unwrap();
    let record = env
        .run_job(EnqueueRequest::for_job(&Noop { account_id: 1 }, None).unwrap())
        .await;
    assert_eq!(record.state, "done");
    let length: u64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(length, 0, "the foreign entry and the finished job are gone");
}
