//! Failed sign-ins lock a user, and what lifts the lock: RecordLogin counts consecutive
//! failures and locks past the limit (the account's, else more than 5) with one notice by
//! email; UnlockUser opens the account again (an administrator any lock, a verified
//! password reset only a lock for failed sign-ins); RecordActivity moves the last-activity
//! time forward only. Through the queue, the real SMTP sink receiving the mail, on both
//! backends.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{Backend, TestEnv, World, seed_world};
use lifecycle::demo::crm_data;
use lifecycle::store::users::UserRow;
use lifecycle::store::{audit, emails, users};
use lifecycle_jobs::{ActivitySource, Actor, RecordActivity, RecordLogin, UnlockUser, UnlockVia};

fn failure(world: &World, user_id: i64) -> RecordLogin {
    RecordLogin {
        account_id: world.account,
        user_id,
        succeeded: false,
        at: None,
    }
}

fn success(world: &World, user_id: i64, at: Option<DateTime<Utc>>) -> RecordLogin {
    RecordLogin {
        account_id: world.account,
        user_id,
        succeeded: true,
        at,
    }
}

fn unlock_by_admin(world: &World, user_id: i64) -> UnlockUser {
    UnlockUser {
        account_id: world.account,
        user_id,
        actor: Actor::User(world.admin),
        via: UnlockVia::Admin,
    }
}

fn unlock_by_password_reset(world: &World, user_id: i64) -> UnlockUser {
    UnlockUser {
        account_id: world.account,
        user_id,
        actor: Actor::System,
        via: UnlockVia::PasswordReset,
    }
}

fn activity(world: &World, user_id: i64, at: Option<DateTime<Utc>>) -> RecordActivity {
    RecordActivity {
        account_id: world.account,
        user_id,
        source: ActivitySource::Api,
        at,
    }
}

/// The user's row as it is now (the transaction is closed before returning).
async fn user(env: &TestEnv, user_id: i64) -> UserRow {
    let mut tx = env.tx().await;
    let row = users::find(&mut tx, user_id)
        .await
        .unwrap()
        .expect("the user exists");
    tx.rollback().await.unwrap();
    row
}

/// The templates of the messages recorded for the user, oldest first.
async fn templates_for(env: &TestEnv, user_id: i64) -> Vec<String> {
    let mut tx = env.tx().await;
    let rows = emails::for_user(&mut tx, user_id).await.unwrap();
    tx.rollback().await.unwrap();
    rows.into_iter().map(|row| row.template).collect()
}

/// The audit rows of a job, as (actor, action, entity id).
async fn audit_of(env: &TestEnv, job_id: uuid::Uuid) -> Vec<(String, String, i64)> {
    let mut tx = env.tx().await;
    let rows = audit::for_job(&mut tx, job_id).await.unwrap();
    tx.rollback().await.unwrap();
    rows.into_iter()
        .map(|row| (row.actor, row.action, row.entity_id))
        .collect()
}

/// Gives any stray SendEmail a moment, then checks the sink holds `expected` messages.
async fn sink_stays_at(env: &TestEnv, expected: usize) {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(env.sink.count(), expected, "messages in the sink");
}

async fn fail_times(env: &mut TestEnv, world: &World, user_id: i64, times: usize) {
    for n in 0..times {
        let job = env.run(&failure(world, user_id)).await;
        assert_eq!(job.state, "done", "failure {}: {job:?}", n + 1);
    }
}

/// Locks `user_id` for `reason` as a seeded fixture.
async fn seed_lock(
    env: &TestEnv,
    user_id: i64,
    reason: &str,
    failed_logins: i32,
    last_activity_at: DateTime<Utc>,
) {
    let mut tx = env.tx().await;
    crm_data::locked(&mut tx, user_id, reason, failed_logins, last_activity_at)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn the_sixth_failure_locks_and_emails_once(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let fabienne = common::seed_agent(&env, &world, "Fabienne", "fr").await;

    // Five failures in a row: "more than 5" is not reached.
    fail_times(&mut env, &world, fabienne, 4).await;
    let fifth = env.run(&failure(&world, fabienne)).await;
    assert_eq!(fifth.state, "done", "{fifth:?}");
    let row = user(&env, fabienne).await;
    assert_eq!(row.status, "active");
    assert_eq!(row.failed_logins, 5);
    assert_eq!(row.lock_reason, None);
    assert!(
        audit_of(&env, fifth.id).await.is_empty(),
        "a failure is not audited"
    );
    assert!(templates_for(&env, fabienne).await.is_empty());
    sink_stays_at(&env, 0).await;

    // The sixth locks, audited as the system's doing under that job.
    let sixth = env.run(&failure(&world, fabienne)).await;
    assert_eq!(sixth.state, "done", "{sixth:?}");
    let row = user(&env, fabienne).await;
    assert_eq!(row.status, "locked");
    assert_eq!(row.lock_reason.as_deref(), Some("failed_logins"));
    assert_eq!(row.failed_logins, 6);
    assert_eq!(
        audit_of(&env, sixth.id).await,
        [("system".to_string(), "locked".to_string(), fabienne)]
    );

    // One notice, to her, in French, saying how many attempts.
    let mail = env.mail(1).await;
    assert_eq!(mail.len(), 1);
    let message = &mail[0];
    assert!(
        message.to().contains("fabienne@acme.test"),
        "{}",
        message.to()
    );
    assert_eq!(message.header("Content-Language").as_deref(), Some("fr"));
    assert!(!message.subject().trim().is_empty());
    let (text, html) = (message.text(), message.html());
    assert!(!text.trim().is_empty() && !html.trim().is_empty());
    assert!(text.contains("6 tentatives"), "the count in:\n{text}");
    assert!(html.contains("6 tentatives"), "the count in:\n{html}");
    assert_eq!(
        templates_for(&env, fabienne).await,
        ["locked_failed_logins"]
    );

    // A seventh failure: still locked, no second notice.
    let seventh = env.run(&failure(&world, fabienne)).await;
    assert_eq!(seventh.state, "done", "{seventh:?}");
    let row = user(&env, fabienne).await;
    assert_eq!(row.status, "locked");
    assert_eq!(row.lock_reason.as_deref(), Some("failed_logins"));
    assert!(audit_of(&env, seventh.id).await.is_empty(), "locked once");
    assert_eq!(
        templates_for(&env, fabienne).await,
        ["locked_failed_logins"]
    );
    sink_stays_at(&env, 1).await;
}

async fn a_success_resets_the_count_and_sets_the_last_login(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let sam = common::seed_agent(&env, &world, "Sam", "en").await;

    fail_times(&mut env, &world, sam, 4).await;
    assert_eq!(user(&env, sam).await.failed_logins, 4);
    let signed_in_at = env.clock.now() - Duration::minutes(30);
    let job = env.run(&success(&world, sam, Some(signed_in_at))).await;
    assert_eq!(job.state, "done", "{job:?}");
    let row = user(&env, sam).await;
    assert_eq!(row.status, "active");
    assert_eq!(row.failed_logins, 0);
    assert_eq!(row.last_login_at, Some(signed_in_at));
    assert_eq!(row.last_activity_at, Some(signed_in_at));

    // The count restarted: five more failures do not lock (4 + 5 would have).
    fail_times(&mut env, &world, sam, 5).await;
    let row = user(&env, sam).await;
    assert_eq!(row.status, "active");
    assert_eq!(row.failed_logins, 5);

    // A report from a clock running ahead is taken as now.
    env.clock.advance(Duration::hours(1));
    let now = env.clock.now();
    let job = env
        .run(&success(&world, sam, Some(now + Duration::days(1))))
        .await;
    assert_eq!(job.state, "done", "{job:?}");
    let row = user(&env, sam).await;
    assert_eq!(row.failed_logins, 0);
    assert_eq!(row.last_login_at, Some(now));
    assert_eq!(row.last_activity_at, Some(now));
    assert!(
        audit_of(&env, job.id).await.is_empty(),
        "sign-ins are not audited"
    );
    sink_stays_at(&env, 0).await;
}

async fn the_account_limit_wins_over_the_default(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let lee = common::seed_agent(&env, &world, "Lee", "en").await;
    let mut tx = env.tx().await;
    crm_data::failed_login_limit(&mut tx, world.account, 2)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    fail_times(&mut env, &world, lee, 2).await;
    let row = user(&env, lee).await;
    assert_eq!((row.status.as_str(), row.failed_logins), ("active", 2));
    fail_times(&mut env, &world, lee, 1).await;
    let row = user(&env, lee).await;
    assert_eq!(row.status, "locked");
    assert_eq!(row.lock_reason.as_deref(), Some("failed_logins"));
    assert_eq!(row.failed_logins, 3);
    let mail = env.mail(1).await;
    assert!(mail[0].to().contains("lee@acme.test"));
    assert!(
        mail[0].text().contains("after 3 failed sign-in attempts"),
        "{}",
        mail[0].text()
    );
}

async fn an_admin_unlocks_and_an_idle_lock_gets_a_fresh_clock(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let lena = common::seed_agent(&env, &world, "Lena", "en").await;
    let ivan = common::seed_agent(&env, &world, "Ivan", "en").await;
    let lena_active_at = env.clock.now() - Duration::days(3);
    seed_lock(&env, lena, "failed_logins", 6, lena_active_at).await;
    seed_lock(&env, ivan, "idle", 0, env.clock.now() - Duration::days(100)).await;
    env.clock.advance(Duration::hours(1));
    let now = env.clock.now();

    // A lock for failed sign-ins: open again, counter reset, activity clock untouched.
    let job = env.run(&unlock_by_admin(&world, lena)).await;
    assert_eq!(job.state, "done", "{job:?}");
    let row = user(&env, lena).await;
    assert_eq!(row.status, "active");
    assert_eq!(row.failed_logins, 0);
    assert_eq!(row.lock_reason, None);
    assert_eq!(row.last_activity_at, Some(lena_active_at));
    assert_eq!(
        audit_of(&env, job.id).await,
        [(
            format!("user:{}", world.admin),
            "unlocked".to_string(),
            lena
        )]
    );
    let mail = env.mail(1).await;
    assert!(mail[0].to().contains("lena@acme.test"), "{}", mail[0].to());
    assert!(
        mail[0].subject().contains("unlocked"),
        "{}",
        mail[0].subject()
    );
    assert_eq!(mail[0].header("Content-Language").as_deref(), Some("en"));
    assert_eq!(templates_for(&env, lena).await, ["unlocked"]);

    // An idle lock: open again with a fresh activity clock, else the next sweep relocks.
    let job = env.run(&unlock_by_admin(&world, ivan)).await;
    assert_eq!(job.state, "done", "{job:?}");
    let row = user(&env, ivan).await;
    assert_eq!(row.status, "active");
    assert_eq!(row.lock_reason, None);
    assert_eq!(row.failed_logins, 0);
    assert_eq!(row.last_activity_at, Some(now));
    let mail = env.mail(2).await;
    let to_ivan: Vec<_> = mail
        .iter()
        .filter(|message| message.to().contains("ivan@acme.test"))
        .collect();
    assert_eq!(to_ivan.len(), 1);
    assert!(
        to_ivan[0].subject().contains("unlocked"),
        "{}",
        to_ivan[0].subject()
    );
    assert_eq!(templates_for(&env, ivan).await, ["unlocked"]);
    sink_stays_at(&env, 2).await;
}

async fn a_password_reset_lifts_only_a_lock_for_failed_sign_ins(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let rita = common::seed_agent(&env, &world, "Rita", "es").await;
    let idle = common::seed_agent(&env, &world, "Iris", "en").await;
    let by_admin = common::seed_agent(&env, &world, "Abel", "en").await;
    let earlier = env.clock.now() - Duration::days(2);
    seed_lock(&env, rita, "failed_logins", 6, earlier).await;
    seed_lock(&env, idle, "idle", 0, env.clock.now() - Duration::days(100)).await;
    seed_lock(&env, by_admin, "admin", 0, earlier).await;

    let job = env.run(&unlock_by_password_reset(&world, rita)).await;
    assert_eq!(job.state, "done", "{job:?}");
    let row = user(&env, rita).await;
    assert_eq!(row.status, "active");
    assert_eq!(row.failed_logins, 0);
    assert_eq!(row.lock_reason, None);
    assert_eq!(
        audit_of(&env, job.id).await,
        [("system".to_string(), "unlocked".to_string(), rita)]
    );
    let mail = env.mail(1).await;
    assert!(mail[0].to().contains("rita@acme.test"), "{}", mail[0].to());
    assert_eq!(mail[0].header("Content-Language").as_deref(), Some("es"));

    // Locked for inactivity, or by an administrator: an administrator must unlock.
    for (locked, reason) in [(idle, "idle"), (by_admin, "admin")] {
        let refused = env.run(&unlock_by_password_reset(&world, locked)).await;
        assert_eq!(refused.state, "dead", "{reason}: {refused:?}");
        assert_eq!(refused.attempts, 1, "{reason}: not retried");
        let error = refused.last_error.clone().unwrap_or_default();
        assert!(
            error.contains("an administrator must unlock"),
            "{reason}: {error}"
        );
        let row = user(&env, locked).await;
        assert_eq!(row.status, "locked", "{reason}");
        assert_eq!(row.lock_reason.as_deref(), Some(reason));
        assert!(
            templates_for(&env, locked).await.is_empty(),
            "{reason}: no mail"
        );
        assert!(
            audit_of(&env, refused.id).await.is_empty(),
            "{reason}: no change"
        );
    }
    sink_stays_at(&env, 1).await;
}

async fn refused_unlocks_change_nothing_and_say_why(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let tom = common::seed_agent(&env, &world, "Tom", "en").await;
    let pat = common::seed_agent(&env, &world, "Pat", "en").await;
    let ana = common::seed_agent(&env, &world, "Ana", "en").await;
    seed_lock(&env, tom, "failed_logins", 6, env.clock.now()).await;
    let mut tx = env.tx().await;
    let eve = common::admin_of_another_account(&mut tx, env.clock.now()).await;
    tx.commit().await.unwrap();

    let cases = [
        (eve, "does not belong to account"),
        (pat, "not allowed to manage users"),
    ];
    for (actor, reason) in cases {
        let job = UnlockUser {
            actor: Actor::User(actor),
            ..unlock_by_admin(&world, tom)
        };
        let refused = env.run(&job).await;
        assert_eq!(refused.state, "dead", "{reason}: {refused:?}");
        assert_eq!(refused.attempts, 1, "{reason}: not retried");
        let error = refused.last_error.clone().unwrap_or_default();
        assert!(error.contains(reason), "expected {reason:?} in {error:?}");
        let row = user(&env, tom).await;
        assert_eq!(row.status, "locked", "{reason}");
        assert_eq!(row.lock_reason.as_deref(), Some("failed_logins"));
        assert_eq!(row.failed_logins, 6);
        assert!(audit_of(&env, refused.id).await.is_empty(), "{reason}");
    }
    assert!(templates_for(&env, tom).await.is_empty());

    // Unlocking someone who is not locked: done, nothing changed, nobody emailed.
    let before = user(&env, ana).await;
    let job = env.run(&unlock_by_admin(&world, ana)).await;
    assert_eq!(job.state, "done", "{job:?}");
    let row = user(&env, ana).await;
    assert_eq!(row.status, "active");
    assert_eq!(row.lock_reason, None);
    assert_eq!(row.last_activity_at, before.last_activity_at);
    assert!(audit_of(&env, job.id).await.is_empty());
    assert!(templates_for(&env, ana).await.is_empty());
    sink_stays_at(&env, 0).await;
}

/// Records an activity of `user_id` at `at`; returns the user's last activity after it.
async fn record(
    env: &mut TestEnv,
    world: &World,
    user_id: i64,
    at: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let job = env.run(&activity(world, user_id, at)).await;
    assert_eq!(job.state, "done", "{job:?}");
    user(env, user_id).await.last_activity_at
}

async fn activity_moves_forward_only(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let mia = common::seed_agent(&env, &world, "Mia", "en").await;
    let start = env.clock.now();
    let (t0, t1, t2) = (
        start - Duration::hours(3),
        start - Duration::hours(2),
        start - Duration::hours(1),
    );
    assert_eq!(record(&mut env, &world, mia, Some(t1)).await, Some(t1));
    assert_eq!(
        record(&mut env, &world, mia, Some(t0)).await,
        Some(t1),
        "never back"
    );
    assert_eq!(record(&mut env, &world, mia, Some(t2)).await, Some(t2));
    env.clock.advance(Duration::minutes(10));
    let now = env.clock.now();
    assert_eq!(
        record(&mut env, &world, mia, None).await,
        Some(now),
        "absent: now"
    );
    env.clock.advance(Duration::minutes(5));
    let now = env.clock.now();
    assert_eq!(
        record(&mut env, &world, mia, Some(now + Duration::days(1))).await,
        Some(now),
        "the future is taken as now"
    );

    // A locked user's integration still syncs: nothing recorded, the lock stays.
    let lou = common::seed_agent(&env, &world, "Lou", "en").await;
    let locked_activity = now - Duration::days(10);
    seed_lock(&env, lou, "admin", 0, locked_activity).await;
    env.clock.advance(Duration::minutes(1));
    let job = env.run(&activity(&world, lou, None)).await;
    assert_eq!(job.state, "done", "{job:?}");
    let row = user(&env, lou).await;
    assert_eq!(row.status, "locked");
    assert_eq!(row.last_activity_at, Some(locked_activity));

    // Another tenant's user does not exist for this account.
    let mut tx = env.tx().await;
    let eve = common::admin_of_another_account(&mut tx, start).await;
    tx.commit().await.unwrap();
    let job = env.run(&activity(&world, eve, None)).await;
    assert_eq!(job.state, "dead", "{job:?}");
    assert_eq!(job.attempts, 1);
    let error = job.last_error.unwrap_or_default();
    assert!(error.contains("does not exist"), "{error}");
    assert_eq!(user(&env, eve).await.last_activity_at, None);
}

async fn a_redelivered_failure_counts_once(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let rob = common::seed_agent(&env, &world, "Rob", "en").await;

    let first = env.run(&failure(&world, rob)).await;
    assert_eq!(first.state, "done", "{first:?}");
    assert!(env.app.queue.retry_now(first.id).await.unwrap());
    let again = env.wait_for(first.id).await;
    assert_eq!(again.state, "done", "{again:?}");
    assert_eq!(user(&env, rob).await.failed_logins, 1, "counted once");

    // The locking failure redelivered: no second lock, audit row or notice.
    fail_times(&mut env, &world, rob, 4).await;
    let locking = env.run(&failure(&world, rob)).await;
    let row = user(&env, rob).await;
    assert_eq!((row.status.as_str(), row.failed_logins), ("locked", 6));
    env.mail(1).await;
    assert!(env.app.queue.retry_now(locking.id).await.unwrap());
    let again = env.wait_for(locking.id).await;
    assert_eq!(again.state, "done", "{again:?}");
    let row = user(&env, rob).await;
    assert_eq!((row.status.as_str(), row.failed_logins), ("locked", 6));
    assert_eq!(audit_of(&env, locking.id).await.len(), 1);
    assert_eq!(templates_for(&env, rob).await, ["locked_failed_logins"]);
    sink_stays_at(&env, 1).await;
}

async fn concurrent_failures_all_count_and_lock_once(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let zoe = common::seed_agent(&env, &world, "Zoe", "en").await;

    let requests = (0..12)
        .map(|_| common::request(&failure(&world, zoe)))
        .collect();
    let enqueued = env.app.queue.enqueue_batch(requests).await.unwrap();
    assert_eq!(enqueued.len(), 12);
    let mut locks = 0;
    for job in &enqueued {
        let record = env.wait_for(job.id).await;
        assert_eq!(record.state, "done", "{record:?}");
        locks += audit_of(&env, job.id)
            .await
            .iter()
            .filter(|(_, action, _)| action == "locked")
            .count();
    }
    let row = user(&env, zoe).await;
    assert_eq!(row.failed_logins, 12, "every failure counts");
    assert_eq!(row.status, "locked");
    assert_eq!(row.lock_reason.as_deref(), Some("failed_logins"));
    assert_eq!(locks, 1, "locked by one report");
    assert_eq!(templates_for(&env, zoe).await, ["locked_failed_logins"]);
    let mail = env.mail(1).await;
    assert!(mail[0].to().contains("zoe@acme.test"));
    sink_stays_at(&env, 1).await;
}

on_both_backends!(
    the_sixth_failure_locks_and_emails_once,
    a_success_resets_the_count_and_sets_the_last_login,
    the_account_limit_wins_over_the_default,
    an_admin_unlocks_and_an_idle_lock_gets_a_fresh_clock,
    a_password_reset_lifts_only_a_lock_for_failed_sign_ins,
    refused_unlocks_change_nothing_and_say_why,
    activity_moves_forward_only,
    a_redelivered_failure_counts_once,
    concurrent_failures_all_count_and_lock_once,
);
