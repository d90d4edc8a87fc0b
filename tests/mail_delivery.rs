//! The mail pipeline: a change records its message and a SendEmail job in its own
//! transaction; SendEmail renders and sends it once, marks it `sent`, and a retried or
//! redelivered SendEmail sends nothing more. SMTP outages and transient refusals delay mail
//! without undoing the change or losing the message; a message that cannot be sent (it does
//! not exist, belongs to another account, has an unusable recipient) is dead at once.
//! Through the queue, the real SMTP sink receiving the mail, on both backends; the file
//! transport of the embedded default on SQLite.

mod common;

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use chrono::Duration;
use common::{Backend, TestEnv, World, seed_agent, seed_world};
use lifecycle::config::MailTransport;
use lifecycle::domain::user::LockReason;
use lifecycle::store::audit::AuditStamp;
use lifecycle::store::emails::{self, EmailRow, NewEmail};
use lifecycle::store::ledger::{self, JobRecord};
use lifecycle::store::{Store, users};
use lifecycle_jobs::{Actor, RecordLogin, SendEmail, UnlockUser, UnlockVia};
use uuid::Uuid;

const LOCKED_FAILED_LOGINS: &str = "locked_failed_logins";

fn failed_login(world: &World, user_id: i64) -> RecordLogin {
    RecordLogin {
        account_id: world.account,
        user_id,
        succeeded: false,
        at: None,
    }
}

/// Six failed sign-ins in a row: the sixth locks the user and records the notice.
async fn lock_by_failed_logins(env: &mut TestEnv, world: &World, user_id: i64) {
    for attempt in 1..=6 {
        let record = env.run(&failed_login(world, user_id)).await;
        assert_eq!(record.state, "done", "failed sign-in {attempt}: {record:?}");
    }
    let mut tx = env.tx().await;
    let user = users::find(&mut tx, user_id).await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        user.status, "locked",
        "six failed sign-ins lock user {user_id}"
    );
}

/// Locks users directly in the store: no message recorded, none sent.
async fn lock_quietly(env: &TestEnv, world: &World, user_ids: &[i64]) {
    let mut tx = env.tx().await;
    let stamp = AuditStamp {
        account_id: world.account,
        actor: "system".into(),
        job_id: Uuid::now_v7(),
        at: env.clock.now(),
    };
    for &user_id in user_ids {
        assert!(
            users::lock(&mut tx, &stamp, user_id, LockReason::FailedLogins)
                .await
                .unwrap()
        );
    }
    tx.commit().await.unwrap();
}

async fn user_status(env: &TestEnv, user_id: i64) -> String {
    let mut tx = env.tx().await;
    let user = users::find(&mut tx, user_id).await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    user.status
}

/// A user's recorded messages, oldest first (the transaction ended before returning).
async fn emails_of(env: &TestEnv, user_id: i64) -> Vec<EmailRow> {
    let mut tx = env.tx().await;
    let rows = emails::for_user(&mut tx, user_id).await.unwrap();
    tx.rollback().await.unwrap();
    rows
}

async fn email(env: &TestEnv, email_id: i64) -> EmailRow {
    let mut tx = env.tx().await;
    let row = emails::find(&mut tx, email_id).await.unwrap();
    tx.rollback().await.unwrap();
    row.unwrap_or_else(|| panic!("message {email_id} is recorded"))
}

/// The one message recorded for `user_id`, with `template`.
async fn only_email(env: &TestEnv, user_id: i64, template: &str) -> EmailRow {
    let rows = emails_of(env, user_id).await;
    assert_eq!(rows.len(), 1, "one message for user {user_id}: {rows:?}");
    assert_eq!(rows[0].template, template, "{rows:?}");
    rows.into_iter().next().unwrap()
}

/// The SendEmail job of a recorded message: the one holding `mail::send:<email_id>`.
async fn send_job_of(env: &TestEnv, email_id: i64) -> Uuid {
    let key = format!("mail::send:{email_id}");
    let sql = "SELECT id FROM jobs WHERE idempotency_key = $1 AND kind = 'mail::send'";
    let ids: Vec<Uuid> = match env.store() {
        Store::Postgres(pool) => sqlx::query_scalar(sql).bind(&key).fetch_all(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(sql).bind(&key).fetch_all(pool).await,
    }
    .expect("look up the SendEmail job");
    assert_eq!(
        ids.len(),
        1,
        "one SendEmail job for message {email_id}: {ids:?}"
    );
    ids[0]
}

/// Every SendEmail job in the ledger.
async fn send_jobs(env: &TestEnv) -> Vec<JobRecord> {
    let sql = "SELECT id FROM jobs WHERE kind = 'mail::send' ORDER BY created_at_ms, id";
    let ids: Vec<Uuid> = match env.store() {
        Store::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
    }
    .expect("list SendEmail jobs");
    let mut records = Vec::with_capacity(ids.len());
    for id in ids {
        records.push(env.job(id).await);
    }
    records
}

/// The errors of each failed attempt of a job: (attempt, error, permanent).
async fn attempt_errors(env: &TestEnv, job_id: Uuid) -> Vec<(i32, String, bool)> {
    let sql = "SELECT attempt, error, permanent FROM job_attempt_errors
                WHERE job_id = $1 ORDER BY attempt";
    match env.store() {
        Store::Postgres(pool) => sqlx::query_as(sql).bind(job_id).fetch_all(pool).await,
        Store::Sqlite(pool) => sqlx::query_as(sql).bind(job_id).fetch_all(pool).await,
    }
    .expect("attempt errors")
}

async fn records(env: &TestEnv, job_ids: &[Uuid]) -> Vec<JobRecord> {
    let mut records = Vec::with_capacity(job_ids.len());
    for &id in job_ids {
        records.push(env.job(id).await);
    }
    records
}

/// Polls the jobs (the worker running) until `ready` holds, moving the clock by `step` at
/// every look (zero: the clock stays). A dead job fails the test at once.
async fn poll_jobs(
    env: &mut TestEnv,
    job_ids: &[Uuid],
    step: Duration,
    what: &str,
    ready: impl Fn(&[JobRecord]) -> bool,
) -> Vec<JobRecord> {
    env.start_worker();
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(60);
    loop {
        let now = records(env, job_ids).await;
        if ready(&now) {
            return now;
        }
        // A dead SendEmail will never be delivered: say so now rather than at the deadline.
        assert!(
            now.iter().all(|r| r.state != ledger::state::DEAD),
            "a job is dead while waiting for {what}: {now:#?}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {now:#?}"
        );
        if step > Duration::zero() {
            env.clock.advance(step);
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// Every job's attempt number `attempt` failed and it waits, queued, for another.
fn all_failed_attempt(records: &[JobRecord], attempt: i32) -> bool {
    records
        .iter()
        .all(|r| r.state == ledger::state::QUEUED && r.attempts >= attempt)
}

/// Gives a stray (duplicate) delivery time to arrive before counting.
async fn settle_down() {
    tokio::time::sleep(StdDuration::from_millis(500)).await;
}

/// A recorded message with no SendEmail job, for SendEmail jobs the test enqueues itself.
async fn record_pending_email(env: &TestEnv, world: &World, user_id: i64, to: &str) -> i64 {
    let variables = serde_json::json!({ "first_name": "Pat", "account_name": "Acme Ventas" });
    let mut tx = env.tx().await;
    let email_id = emails::insert(
        &mut tx,
        &NewEmail {
            account_id: world.account,
            user_id: Some(user_id),
            template: "unlocked",
            language: "en",
            to_address: to,
            to_name: "Pat Agent",
            variables: &variables,
            created_by_job: Uuid::now_v7(),
            created_at: env.clock.now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    email_id
}

/// Scenario 1: each lock emails its user once, in the user's language, with a text and an
/// HTML part; the row records the delivery (one attempt, the Message-ID sent).
async fn one_message_per_change_in_the_recipients_language(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let people = [("Emma", "en"), ("Elena", "es"), ("Paulo", "pt")];
    let mut users = Vec::new();
    for (name, language) in people {
        let id = seed_agent(&env, &world, name, language).await;
        users.push((id, format!("{}@acme.test", name.to_lowercase()), language));
    }
    for (id, _, _) in &users {
        lock_by_failed_logins(&mut env, &world, *id).await;
    }
    // A failure after the lock changes nothing: only the report that locks sends mail.
    let again = env.run(&failed_login(&world, users[0].0)).await;
    assert_eq!(again.state, "done", "{again:?}");

    let mut subjects = BTreeSet::new();
    for (id, address, language) in &users {
        let row = only_email(&env, *id, LOCKED_FAILED_LOGINS).await;
        let job = send_job_of(&env, row.id).await;
        let record = env.wait_for(job).await;
        assert_eq!(record.state, "done", "{record:?}");
        assert_eq!(record.attempts, 1, "{record:?}");
        let row = email(&env, row.id).await;
        assert_eq!(row.state, "sent", "{row:?}");
        assert_eq!(row.send_attempts, 1, "{row:?}");
        assert_eq!(row.sent_at, Some(env.clock.now()), "{row:?}");
        assert_eq!(row.language, *language);

        let received = env.sink.messages_to(address);
        assert_eq!(received.len(), 1, "one message to {address}: {received:#?}");
        let message = &received[0];
        assert!(message.to().contains(address.as_str()), "{}", message.to());
        assert_eq!(
            message.header("Content-Language").as_deref(),
            Some(*language),
            "{message:?}"
        );
        assert!(
            message.subject().contains("Acme Ventas"),
            "{}",
            message.subject()
        );
        assert!(!message.text().trim().is_empty(), "{message:?}");
        let html = message.html();
        assert!(!html.trim().is_empty(), "{message:?}");
        assert!(html.to_lowercase().starts_with("<!doctype html>"), "{html}");
        assert_eq!(
            row.message_id.as_deref(),
            message.header("Message-ID").as_deref(),
            "the row records the Message-ID sent"
        );
        subjects.insert(message.subject());
    }
    assert_eq!(subjects.len(), 3, "a subject per language: {subjects:?}");
    settle_down().await;
    assert_eq!(env.sink.count(), 3, "{:#?}", env.sink.messages());
    assert_eq!(send_jobs(&env).await.len(), 3, "one SendEmail per lock");
}

/// Scenario 2: an attempt that fails after the server accepted the message is retried, and
/// the retry finds the message sent: one message in the mailbox.
async fn a_failure_after_sending_does_not_send_twice(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let user = seed_agent(&env, &world, "Emma", "en").await;
    env.app.mailer.fail_after_sending(1);
    lock_by_failed_logins(&mut env, &world, user).await;

    let row = only_email(&env, user, LOCKED_FAILED_LOGINS).await;
    let job = send_job_of(&env, row.id).await;
    let record = env
        .wait_for_with_clock_running(job, Duration::seconds(2))
        .await;
    assert_eq!(record.state, "done", "{record:?}");
    assert_eq!(record.attempts, 2, "failed once, then done: {record:?}");
    let errors = attempt_errors(&env, job).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, 1, "{errors:?}");
    assert!(errors[0].1.contains("after sending"), "{errors:?}");
    assert!(!errors[0].2, "a transient failure: {errors:?}");

    settle_down().await;
    let mail = env.sink.messages();
    assert_eq!(mail.len(), 1, "sent once: {mail:#?}");
    assert!(mail[0].to().contains("emma@acme.test"));
    let row = email(&env, row.id).await;
    assert_eq!(row.state, "sent", "{row:?}");
    assert_eq!(
        row.send_attempts, 1,
        "the retry did not try to send: {row:?}"
    );
    assert_eq!(
        row.message_id.as_deref(),
        mail[0].header("Message-ID").as_deref()
    );
}

/// Scenario 3: with the SMTP server down, the changes are made and their messages wait;
/// SendEmail retries (transient, never dead) until the server is back, then each message goes
/// out once.
async fn an_smtp_outage_delays_mail_without_blocking_changes(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let mut users = Vec::new();
    for name in ["Ana", "Bea", "Cai", "Dan", "Eva"] {
        users.push((
            seed_agent(&env, &world, name, "es").await,
            format!("{}@acme.test", name.to_lowercase()),
        ));
    }
    let ids: Vec<i64> = users.iter().map(|(id, _)| *id).collect();
    lock_quietly(&env, &world, &ids).await;

    env.sink.stop().await;
    for &user_id in &ids {
        let record = env
            .run(&UnlockUser {
                account_id: world.account,
                user_id,
                actor: Actor::User(world.admin),
                via: UnlockVia::Admin,
            })
            .await;
        assert_eq!(
            record.state, "done",
            "the outage does not block the change: {record:?}"
        );
        assert_eq!(record.attempts, 1, "{record:?}");
        assert_eq!(user_status(&env, user_id).await, "active");
    }
    let mut email_ids = Vec::new();
    let mut jobs = Vec::new();
    for &user_id in &ids {
        let row = only_email(&env, user_id, "unlocked").await;
        jobs.push(send_job_of(&env, row.id).await);
        email_ids.push(row.id);
    }

    // Down: every attempt fails for a reason worth retrying; the clock moves, they retry.
    let mut last = Vec::new();
    for attempt in 1..=4 {
        if attempt > 1 {
            env.clock.advance(Duration::seconds(2));
        }
        last = poll_jobs(&mut env, &jobs, Duration::zero(), "failed attempts", |r| {
            all_failed_attempt(r, attempt)
        })
        .await;
    }
    for record in &last {
        assert_eq!(record.state, "queued", "{record:?}");
        assert!(record.attempts >= 4, "{record:?}");
        assert!(record.attempts < record.max_attempts, "{record:?}");
        assert_eq!(record.max_attempts, 25, "{record:?}");
        let error = record.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("will retry"), "{error}");
        let errors = attempt_errors(&env, record.id).await;
        assert!(errors.len() >= 4, "{errors:?}");
        assert!(
            errors.iter().all(|(_, _, permanent)| !permanent),
            "{errors:?}"
        );
    }
    for &email_id in &email_ids {
        let row = email(&env, email_id).await;
        assert_eq!(row.state, "pending", "{row:?}");
        assert!(row.send_attempts >= 4, "{row:?}");
    }
    for &user_id in &ids {
        assert_eq!(
            user_status(&env, user_id).await,
            "active",
            "the change stands"
        );
    }
    assert_eq!(env.sink.count(), 0);

    // Up again: the clock moves until every message is out.
    env.sink.resume().await;
    let done = poll_jobs(&mut env, &jobs, Duration::seconds(2), "delivery", |r| {
        r.iter().all(|r| r.state == ledger::state::DONE)
    })
    .await;
    for record in &done {
        assert_eq!(record.state, "done", "{record:?}");
        assert!(record.attempts > 4, "{record:?}");
    }
    settle_down().await;
    let mail = env.sink.messages();
    assert_eq!(mail.len(), 5, "{mail:#?}");
    for (user_id, address) in &users {
        assert_eq!(
            env.sink.messages_to(address).len(),
            1,
            "one message to {address}"
        );
        let row = only_email(&env, *user_id, "unlocked").await;
        assert_eq!(row.state, "sent", "{row:?}");
        assert!(row.message_id.is_some(), "{row:?}");
    }
    let ids_sent: BTreeSet<_> = mail.iter().map(|m| m.header("Message-ID")).collect();
    assert_eq!(ids_sent.len(), 5, "five distinct messages");
}

/// Scenario 4: a server that answers 451 (try again later) is retried like an outage; once
/// it accepts, the message goes out once.
async fn a_transient_refusal_is_retried_then_delivered_once(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let user = seed_agent(&env, &world, "Emma", "en").await;
    env.sink.set_transient_failure(true);
    lock_by_failed_logins(&mut env, &world, user).await;
    let row = only_email(&env, user, LOCKED_FAILED_LOGINS).await;
    let job = send_job_of(&env, row.id).await;

    let refused = poll_jobs(&mut env, &[job], Duration::seconds(2), "refusals", |r| {
        all_failed_attempt(r, 3)
    })
    .await;
    let error = refused[0].last_error.as_deref().unwrap_or_default();
    assert!(error.contains("451"), "{error}");
    let errors = attempt_errors(&env, job).await;
    assert!(errors.len() >= 3, "{errors:?}");
    assert!(
        errors.iter().all(|(_, _, permanent)| !permanent),
        "{errors:?}"
    );
    assert_eq!(email(&env, row.id).await.state, "pending");
    assert_eq!(env.sink.count(), 0);

    env.sink.set_transient_failure(false);
    let record = env
        .wait_for_with_clock_running(job, Duration::seconds(2))
        .await;
    assert_eq!(record.state, "done", "{record:?}");
    assert!(record.attempts > 3, "{record:?}");
    settle_down().await;
    let mail = env.sink.messages();
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert!(mail[0].to().contains("emma@acme.test"));
    let row = email(&env, row.id).await;
    assert_eq!(row.state, "sent", "{row:?}");
    assert_eq!(
        row.send_attempts, record.attempts,
        "each attempt counted: {row:?}"
    );
}

/// Scenario 5: a message that cannot be sent is not retried: one that does not exist, one
/// of another account (left untouched), one whose recipient is not an address.
async fn an_unsendable_message_is_dead_at_once(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let user = seed_agent(&env, &world, "Pat", "en").await;

    let missing = env
        .run(&SendEmail {
            account_id: world.account,
            email_id: 999_999,
        })
        .await;
    assert_eq!(missing.state, "dead", "{missing:?}");
    assert_eq!(missing.attempts, 1, "{missing:?}");
    let error = missing.last_error.unwrap_or_default();
    assert!(error.contains("does not exist"), "{error}");

    // A pending message of this account, asked for under another account.
    let mut tx = env.tx().await;
    let eve = common::admin_of_another_account(&mut tx, env.clock.now()).await;
    let other = users::find(&mut tx, eve).await.unwrap().unwrap().account_id;
    tx.commit().await.unwrap();
    assert_ne!(other, world.account);
    let email_id = record_pending_email(&env, &world, user, "pat@acme.test").await;
    let foreign = env
        .run(&SendEmail {
            account_id: other,
            email_id,
        })
        .await;
    assert_eq!(foreign.state, "dead", "{foreign:?}");
    assert_eq!(foreign.attempts, 1, "{foreign:?}");
    let error = foreign.last_error.unwrap_or_default();
    assert!(error.contains("does not exist"), "{error}");
    settle_down().await;
    assert_eq!(env.sink.count(), 0, "nothing sent for another account");
    let row = email(&env, email_id).await;
    assert_eq!(
        (row.state.as_str(), row.send_attempts),
        ("pending", 0),
        "{row:?}"
    );

    // The same message under its own account goes out: it was sendable all along.
    let own = env
        .run(&SendEmail {
            account_id: world.account,
            email_id,
        })
        .await;
    assert_eq!(own.state, "done", "{own:?}");
    assert_eq!(env.mail(1).await.len(), 1);
    assert_eq!(email(&env, email_id).await.state, "sent");

    // A recipient that is not an address: the mail library refuses it, for good.
    let bad_id = record_pending_email(&env, &world, user, "not an address").await;
    let bad = env
        .run(&SendEmail {
            account_id: world.account,
            email_id: bad_id,
        })
        .await;
    assert_eq!(bad.state, "dead", "{bad:?}");
    assert_eq!(bad.attempts, 1, "{bad:?}");
    let error = bad.last_error.unwrap_or_default();
    assert!(error.contains("recipient address"), "{error}");
    settle_down().await;
    assert_eq!(env.sink.count(), 1, "nothing more sent");
    assert_eq!(email(&env, bad_id).await.state, "pending");
}

/// Scenario 6: redelivering a finished SendEmail (or the change that recorded it) sends
/// nothing.
async fn a_redelivered_send_sends_nothing(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let user = seed_agent(&env, &world, "Emma", "en").await;
    lock_by_failed_logins(&mut env, &world, user).await;
    let row = only_email(&env, user, LOCKED_FAILED_LOGINS).await;
    let job = send_job_of(&env, row.id).await;
    let first = env.wait_for(job).await;
    assert_eq!(
        (first.state.as_str(), first.attempts),
        ("done", 1),
        "{first:?}"
    );
    assert_eq!(env.mail(1).await.len(), 1);
    let sent = email(&env, row.id).await;
    assert_eq!(sent.state, "sent");

    assert!(env.app.queue.retry_now(job).await.unwrap());
    let again = env.wait_for(job).await;
    assert_eq!(again.state, "done", "{again:?}");
    assert_eq!(again.attempts, 2, "it did run again: {again:?}");
    settle_down().await;
    assert_eq!(env.sink.count(), 1, "{:#?}", env.sink.messages());
    let after = email(&env, row.id).await;
    assert_eq!(after.send_attempts, 1, "{after:?}");
    assert_eq!(
        (after.sent_at, after.message_id.clone()),
        (sent.sent_at, sent.message_id.clone())
    );

    // The change itself redelivered: no second message recorded, none sent.
    let locking = env.run(&failed_login(&world, user)).await;
    assert!(env.app.queue.retry_now(locking.id).await.unwrap());
    assert_eq!(env.wait_for(locking.id).await.state, "done");
    settle_down().await;
    assert_eq!(emails_of(&env, user).await.len(), 1);
    assert_eq!(send_jobs(&env).await.len(), 1);
    assert_eq!(env.sink.count(), 1);
}

/// Builds the context a SendEmail attempt runs with, for attempts the test runs itself
/// (two at once; one after a claim left in place), as the worker would.
fn attempt_context(env: &TestEnv) -> lifecycle::handlers::Runtime<'_> {
    lifecycle::handlers::Runtime {
        store: &env.app.store,
        queue: &env.app.queue,
        clock: &env.app.clock,
        mailer: &env.app.mailer,
        settings: &env.app.settings,
        job_id: Uuid::now_v7(),
        enqueued_at: None,
    }
}

/// Scenario 9: while the SMTP server takes its time over a message, other writes go on:
/// jobs are enqueued and a RecordActivity runs to completion before the message is marked
/// sent (on SQLite a transaction held across the SMTP conversation stopped every write).
async fn other_writes_go_on_while_a_message_is_in_smtp(backend: Backend) {
    let mut env = TestEnv::start_with(backend, |settings| {
        // The server holds the message until the test lets it go: the client must not
        // give up meanwhile.
        settings.mail.timeout_secs = 60;
    })
    .await;
    let world = seed_world(&env, 2).await;
    let pat = seed_agent(&env, &world, "Pat", "en").await;
    let email_id = record_pending_email(&env, &world, pat, "pat@acme.test").await;
    // Held until released below; the limit only ends the test should the writes wait.
    env.sink.set_dawdle(StdDuration::from_secs(15));
    let send = env
        .enqueue(common::request(&SendEmail {
            account_id: world.account,
            email_id,
        }))
        .await;
    env.start_worker();
    env.sink
        .wait_for_dawdling(1, StdDuration::from_secs(30))
        .await;

    // The message is in the SMTP conversation: other jobs are accepted and run.
    env.clock.advance(Duration::minutes(1));
    let mut writes = env
        .app
        .queue
        .enqueue_batch(common::noop_requests(5))
        .await
        .unwrap();
    writes.push(
        env.enqueue(common::request(&lifecycle_jobs::RecordActivity {
            account_id: world.account,
            user_id: pat,
            source: lifecycle_jobs::ActivitySource::Api,
            at: None,
        }))
        .await,
    );
    for write in &writes {
        assert_eq!(env.wait_for(write.id).await.state, "done", "{write:?}");
    }
    let mut tx = env.tx().await;
    let activity = users::find(&mut tx, pat).await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        activity.last_activity_at,
        Some(env.clock.now()),
        "{activity:?}"
    );
    // ...all while the message was still on its way.
    let row = email(&env, email_id).await;
    assert_eq!(row.state, "pending", "not sent yet: {row:?}");
    assert_eq!(env.sink.count(), 0, "the server has not accepted it yet");
    assert_eq!(env.job(send.id).await.state, "running");

    env.sink.stop_dawdling();
    assert_eq!(env.wait_for(send.id).await.state, "done");
    assert_eq!(env.mail(1).await.len(), 1);
    let row = email(&env, email_id).await;
    assert_eq!(
        (row.state.as_str(), row.send_attempts),
        ("sent", 1),
        "{row:?}"
    );
    settle_down().await;
    assert_eq!(env.sink.count(), 1);
}

/// Scenario 10: two attempts at the same message at once (a job delivered twice, two jobs
/// for one message) send it once: one claims it, the other finds it claimed or sent. Many
/// rounds, the server a little slow so the attempts overlap.
async fn two_attempts_at_once_send_a_message_once(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let pat = seed_agent(&env, &world, "Pat", "en").await;
    env.sink.set_dawdle(StdDuration::from_millis(30));
    for round in 0..30 {
        let address = format!("pat{round}@acme.test");
        let email_id = record_pending_email(&env, &world, pat, &address).await;
        let job = SendEmail {
            account_id: world.account,
            email_id,
        };
        let (first, second) = (attempt_context(&env), attempt_context(&env));
        let (a, b) = tokio::join!(
            lifecycle::handlers::send_email::run(&first, &job),
            lifecycle::handlers::send_email::run(&second, &job)
        );
        let applied = [&a, &b]
            .iter()
            .filter(|r| matches!(r, Ok(lifecycle::handlers::Outcome::Applied)))
            .count();
        assert_eq!(applied, 1, "round {round}: one attempt sends: {a:?} {b:?}");
        for result in [&a, &b] {
            if let Err(error) = result {
                assert!(!error.is_permanent(), "round {round}: {error}");
            }
        }
        let row = email(&env, email_id).await;
        assert_eq!(
            (row.state.as_str(), row.send_attempts),
            ("sent", 1),
            "round {round}: {row:?}"
        );
        assert_eq!(
            env.sink.messages_to(&address).len(),
            1,
            "round {round}: sent once"
        );
    }
    settle_down().await;
    assert_eq!(env.sink.count(), 30);
}

/// Scenario 11: a claim left by an attempt that died mid-send holds for the lease (three
/// times the SMTP timeout), then a later attempt takes the message over and sends it once.
async fn a_claim_left_by_a_crashed_attempt_is_taken_over(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let pat = seed_agent(&env, &world, "Pat", "en").await;
    let lease_ms = lifecycle::handlers::send_email::claim_lease_ms(&env.app.settings.mail);
    let now_ms = env.clock.now_ms();
    // Two messages whose attempts died after claiming them: one long ago, one just now.
    let stale = record_pending_email(&env, &world, pat, "stale@acme.test").await;
    let fresh = record_pending_email(&env, &world, pat, "fresh@acme.test").await;
    let mut tx = env.tx().await;
    let crashed_job = Uuid::now_v7();
    let crashed = emails::claimant(crashed_job, "crashed");
    assert!(
        emails::claim(
            &mut tx,
            stale,
            crashed_job,
            &crashed,
            now_ms - lease_ms - 1,
            i64::MIN
        )
        .await
        .unwrap()
    );
    assert!(
        emails::claim(&mut tx, fresh, crashed_job, &crashed, now_ms, i64::MIN)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    // The stale claim is taken over: sent once, by the job.
    let record = env
        .run(&SendEmail {
            account_id: world.account,
            email_id: stale,
        })
        .await;
    assert_eq!(
        (record.state.as_str(), record.attempts),
        ("done", 1),
        "{record:?}"
    );
    assert_eq!(env.mail(1).await.len(), 1);
    let row = email(&env, stale).await;
    assert_eq!(
        (row.state.as_str(), row.send_attempts),
        ("sent", 2),
        "{row:?}"
    );
    assert_eq!(row.claimed_by, None, "{row:?}");

    // The live claim is not: the attempt is told to try again later, and sends nothing...
    let job = SendEmail {
        account_id: world.account,
        email_id: fresh,
    };
    let early = lifecycle::handlers::send_email::run(&attempt_context(&env), &job).await;
    let error = early.expect_err("a live claim holds");
    assert!(!error.is_permanent(), "{error}");
    assert!(error.to_string().contains("another attempt"), "{error}");
    let row = email(&env, fresh).await;
    assert_eq!(
        (row.state.as_str(), row.claimed_by.as_deref()),
        ("pending", Some(crashed.as_str())),
        "{row:?}"
    );
    // ...until the lease has run out.
    env.clock.advance(Duration::milliseconds(lease_ms + 1));
    let late = lifecycle::handlers::send_email::run(&attempt_context(&env), &job).await;
    assert!(
        matches!(late, Ok(lifecycle::handlers::Outcome::Applied)),
        "{late:?}"
    );
    settle_down().await;
    assert_eq!(env.sink.messages_to("stale@acme.test").len(), 1);
    assert_eq!(env.sink.messages_to("fresh@acme.test").len(), 1);
    assert_eq!(env.sink.count(), 2);
    let row = email(&env, fresh).await;
    assert_eq!(
        (row.state.as_str(), row.send_attempts),
        ("sent", 2),
        "{row:?}"
    );

    // A claim left just now by an earlier attempt of the same job (its worker was killed
    // mid-send; the ledger gave the job to a new attempt): taken over at once.
    let same_job = record_pending_email(&env, &world, pat, "same@acme.test").await;
    env.stop_worker().await;
    let send = env
        .enqueue(common::request(&SendEmail {
            account_id: world.account,
            email_id: same_job,
        }))
        .await;
    let mut tx = env.tx().await;
    let earlier_attempt = emails::claimant(send.id, "killed");
    assert!(
        emails::claim(
            &mut tx,
            same_job,
            send.id,
            &earlier_attempt,
            env.clock.now_ms(),
            i64::MIN
        )
        .await
        .unwrap()
    );
    tx.commit().await.unwrap();
    let record = env.wait_for(send.id).await;
    assert_eq!(
        (record.state.as_str(), record.attempts),
        ("done", 1),
        "{record:?}"
    );
    assert_eq!(env.mail(3).await.len(), 3);
    let row = email(&env, same_job).await;
    assert_eq!(
        (row.state.as_str(), row.send_attempts),
        ("sent", 2),
        "{row:?}"
    );
    assert_eq!(env.sink.messages_to("same@acme.test").len(), 1);
}

on_both_backends!(
    other_writes_go_on_while_a_message_is_in_smtp,
    two_attempts_at_once_send_a_message_once,
    a_claim_left_by_a_crashed_attempt_is_taken_over,
    one_message_per_change_in_the_recipients_language,
    a_failure_after_sending_does_not_send_twice,
    an_smtp_outage_delays_mail_without_blocking_changes,
    a_transient_refusal_is_retried_then_delivered_once,
    an_unsendable_message_is_dead_at_once,
    a_redelivered_send_sends_nothing,
);

/// Scenario 7: the embedded default writes each message as one `.eml` file; no SMTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_transport_writes_one_eml_per_message() {
    let folder = tempfile::tempdir().expect("temp dir");
    let mail_folder = folder.path().join("mail");
    let path = mail_folder.display().to_string();
    let mut env = TestEnv::start_with(Backend::Sqlite, |settings| {
        settings.mail.transport = MailTransport::File;
        settings.mail.folder = path;
    })
    .await;
    let world = seed_world(&env, 2).await;
    let user = seed_agent(&env, &world, "Elena", "es").await;
    lock_by_failed_logins(&mut env, &world, user).await;
    let row = only_email(&env, user, LOCKED_FAILED_LOGINS).await;
    let job = send_job_of(&env, row.id).await;
    let record = env.wait_for(job).await;
    assert_eq!(record.state, "done", "{record:?}");
    settle_down().await;

    let files: Vec<_> = std::fs::read_dir(&mail_folder)
        .expect("the mail folder exists")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        files[0].extension().and_then(|e| e.to_str()),
        Some("eml"),
        "{files:?}"
    );
    let raw = std::fs::read(&files[0]).expect("read the .eml");
    let message = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("a message");
    let subject = message.subject().expect("a subject");
    assert!(subject.contains("Se ha bloqueado"), "{subject}");
    assert!(subject.contains("Acme Ventas"), "{subject}");
    let to = message
        .to()
        .and_then(|to| to.first())
        .and_then(|a| a.address())
        .expect("a recipient");
    assert_eq!(to, "elena@acme.test");
    let raw_text = String::from_utf8_lossy(&raw);
    assert!(raw_text.contains("Content-Language: es"), "{raw_text}");
    let row = email(&env, row.id).await;
    assert_eq!(row.state, "sent", "{row:?}");
    assert_eq!(row.send_attempts, 1, "{row:?}");
    assert_eq!(env.sink.count(), 0, "nothing over SMTP");
}

/// Runs one Redis command on this test's own connection.
async fn redis_cmd(cmd: &mut redis::Cmd) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(common::redis_url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis must answer");
    cmd.query_async(&mut conn).await
}

/// Scenario 8 (PostgreSQL + Redis): Redis failing as a change hands its SendEmail to the
/// stream must not lose the message. The SendEmail is pushed before the change commits,
/// its row written already marked pushed; the push failing takes the mark back in the same
/// transaction, so the change still commits (done, the user locked, the message recorded)
/// and the reconciler pushes the SendEmail once Redis is back. Were the mark kept, the
/// reconciler would skip the row and the message would never go out.
///
/// The failure is made in this test's namespace only: the stream's last ID is set to the
/// largest possible, so `XADD` fails ("exhausted the last possible ID") while reading,
/// acknowledging and the delayed set keep working; then the stream is made anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_failure_handing_over_the_mail_does_not_lose_it() {
    let mut env = TestEnv::start(Backend::PostgresRedis).await;
    let stream = format!("{{lifecycle:{}}}:stream", env.app.settings.queue.namespace);
    let world = seed_world(&env, 2).await;
    let user = seed_agent(&env, &world, "Emma", "en").await;
    for _ in 0..5 {
        assert_eq!(env.run(&failed_login(&world, user)).await.state, "done");
    }
    env.stop_worker().await;
    let locking = env
        .enqueue(common::request(&failed_login(&world, user)))
        .await;
    redis_cmd(
        redis::cmd("XSETID")
            .arg(&stream)
            .arg("18446744073709551615-18446744073709551615"),
    )
    .await
    .expect("XSETID");

    // Handing the SendEmail to the stream fails; the change commits all the same
    // (locked, message and SendEmail recorded), the SendEmail not marked pushed.
    let changed = poll_jobs(
        &mut env,
        &[locking.id],
        Duration::zero(),
        "the change",
        |r| r[0].state == ledger::state::DONE,
    )
    .await;
    assert_eq!(changed[0].attempts, 1, "{changed:?}");
    assert_eq!(user_status(&env, user).await, "locked");
    let row = only_email(&env, user, LOCKED_FAILED_LOGINS).await;
    let send = send_job_of(&env, row.id).await;
    let unpushed = env
        .scalar(
            "SELECT COUNT(*) FROM jobs j JOIN email_messages e
                 ON j.idempotency_key = 'mail::send:' || e.id
              WHERE e.id = $1 AND j.pushed_at_ms IS NULL AND j.state = 'queued'",
            row.id,
        )
        .await;
    assert_eq!(
        unpushed, 1,
        "the failed push left the SendEmail to the reconciler"
    );

    // Redis is fine again: a new stream, the group made anew.
    env.stop_worker().await;
    redis_cmd(redis::cmd("DEL").arg(&stream))
        .await
        .expect("DEL");
    redis_cmd(
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg("workers")
            .arg("0")
            .arg("MKSTREAM"),
    )
    .await
    .expect("XGROUP CREATE");

    // The reconciler pushes the message recorded by the change, and it goes out.
    let delivered = poll_jobs(
        &mut env,
        &[send],
        Duration::seconds(2),
        "the SendEmail recorded by the change",
        |r| r[0].state == ledger::state::DONE,
    )
    .await;
    assert_eq!(delivered[0].attempts, 1);
    assert_eq!(env.mail(1).await.len(), 1);
}
