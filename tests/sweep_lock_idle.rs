//! LockIdleUsers: the 90-day boundary as an instant, every kind of activity, the grace of
//! new users, the exemptions, the circuit breaker and its confirmation, the staged
//! warnings, and a rerun after a run that died halfway. Both backends; the test sets the
//! clock and the instant each sweep judges by.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::sweeps::*;
use common::{Backend, TestEnv, seed_agent, seed_world, start_time};
use lifecycle::handlers::sweep::{Scope, SweepKind, preview};
use lifecycle::handlers::{self, Outcome, Runtime};
use lifecycle_jobs::{ActivitySource, LockIdleUsers, RecordActivity, RecordLogin};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    start_time()
}

/// In Madrid (CEST in June), the boundary is still an instant in UTC: 89 d 23 h 59 min
/// idle is not locked (a 1-day warning is due, stating the local time), 90 days is; the
/// lock notice is in the user's language; a second run changes nothing more.
async fn the_90_day_boundary_is_an_instant(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    account_time_zone(&env, world.account, "Europe/Madrid").await;
    let bea = seed_agent(&env, &world, "Bea", "pt").await;
    last_active(&env, &[bea], t0()).await;
    last_active(&env, &[world.admin], t0() + Duration::days(60)).await;
    active_agents(&env, &world, "f", 5, t0() + Duration::days(60)).await;

    let almost = t0() + Duration::days(89) + Duration::hours(23) + Duration::minutes(59);
    lock_idle_at(&mut env, almost).await;
    assert_eq!(status(&env, bea).await, "active");
    assert_eq!(emails(&env, bea, "idle_lock_warning").await, 1);
    let warning = env.mail(1).await.pop().unwrap();
    assert!(
        warning.subject().contains("manter sua conta ativa"),
        "{}",
        warning.subject()
    );
    // 2026-06-08 12:00 UTC is 14:00 in Madrid.
    assert!(
        warning.text().contains("2026-06-08 14:00 CEST"),
        "{}",
        warning.text()
    );

    let record = lock_idle_at(&mut env, t0() + Duration::days(90)).await;
    assert_eq!(status(&env, bea).await, "locked");
    let reason = text(&env, "SELECT lock_reason FROM users WHERE id = $1", bea).await;
    assert_eq!(reason, "idle");
    assert_eq!(audits(&env, bea, "locked").await, 1);
    assert_eq!(emails(&env, bea, "locked_idle").await, 1);
    let events = env
        .scalar_text_param(
            "SELECT COUNT(*) FROM events WHERE user_id IS NULL AND account_id = $1 AND kind = $2",
            world.account,
            "sweep::lock_idle_users",
        )
        .await;
    assert!(events >= 1, "the batch that locked published an event");
    assert_eq!(record.attempts, 1);
    let notice = env.mail(2).await.pop().unwrap();
    assert!(
        notice.subject().contains("bloqueada por inatividade"),
        "{}",
        notice.subject()
    );

    lock_idle_at(&mut env, t0() + Duration::days(91)).await;
    assert_eq!(audits(&env, bea, "locked").await, 1);
    assert_eq!(emails(&env, bea, "locked_idle").await, 1);
}

/// Every signal moves the deadline: a RecordActivity of each source and a successful
/// sign-in 50 days in keep their users active at 90 days; the user without any is locked.
async fn every_kind_of_activity_moves_the_deadline(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let mut users = Vec::new();
    for name in ["Ui", "Api", "Mobile", "Sync", "Login", "Idle"] {
        users.push(seed_agent(&env, &world, name, "en").await);
    }
    last_active(&env, &users, t0()).await;
    last_active(&env, &[world.admin], t0() + Duration::days(60)).await;
    active_agents(&env, &world, "f", 4, t0() + Duration::days(60)).await;
    env.clock.set(t0() + Duration::days(50));
    let sources = [
        ActivitySource::UiLogin,
        ActivitySource::Api,
        ActivitySource::Mobile,
        ActivitySource::IntegrationSync,
    ];
    for (user, source) in users.iter().zip(sources) {
        env.run(&RecordActivity {
            account_id: world.account,
            user_id: *user,
            source,
            at: None,
        })
        .await;
    }
    env.run(&RecordLogin {
        account_id: world.account,
        user_id: users[4],
        succeeded: true,
        at: None,
    })
    .await;

    lock_idle_at(&mut env, t0() + Duration::days(90)).await;
    for user in &users[..5] {
        assert_eq!(status(&env, *user).await, "active", "user {user}");
    }
    assert_eq!(status(&env, users[5]).await, "locked");
}

/// A user who never signed in counts from confirmation, but never within the 7-day grace
/// of creation, even in an account whose own idle_days is 1.
async fn new_users_have_a_grace(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    exec(
        &env,
        &format!(
            "UPDATE accounts SET idle_days = 1 WHERE id = {}",
            world.account
        ),
    )
    .await;
    let newbie = seed_agent(&env, &world, "Newbie", "en").await;
    exec_at(
        &env,
        "UPDATE users SET last_activity_at = $1 WHERE id = $2",
        None,
        newbie,
    )
    .await;
    let fillers = active_agents(&env, &world, "f", 5, t0()).await;

    let day6 = t0() + Duration::days(6) + Duration::hours(23);
    last_active(&env, &fillers, day6).await;
    lock_idle_at(&mut env, day6).await;
    assert_eq!(status(&env, newbie).await, "active");

    let day7 = t0() + Duration::days(7);
    last_active(&env, &fillers, day7).await;
    lock_idle_at(&mut env, day7).await;
    assert_eq!(status(&env, newbie).await, "locked");
}

/// Service users, the exempt list and the last user manager are never idle-locked; the
/// dry-run names the exemption of each.
async fn each_exemption_keeps_its_user(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let service = seed_agent(&env, &world, "Service", "en").await;
    let listed = seed_agent(&env, &world, "Listed", "en").await;
    let plain = seed_agent(&env, &world, "Plain", "en").await;
    exec(
        &env,
        &format!("UPDATE users SET is_service_account = TRUE WHERE id = {service}"),
    )
    .await;
    exec(
        &env,
        &format!(
            "INSERT INTO account_sweep_exemptions (account_id, user_id) VALUES ({}, {listed})",
            world.account
        ),
    )
    .await;
    last_active(&env, &[service, listed, plain, world.admin], t0()).await;
    active_agents(&env, &world, "f", 4, t0() + Duration::days(80)).await;
    let at = t0() + Duration::days(100);

    let scope = Scope {
        at,
        account_id: 0,
        confirm_accounts: vec![],
    };
    let previews = preview::preview(
        env.store(),
        &env.app.settings.sweeps,
        SweepKind::LockIdle,
        &scope,
    )
    .await
    .unwrap();
    let verdict = |user: i64| {
        previews[0]
            .users
            .iter()
            .find(|row| row.user_id == user)
            .map(|row| row.verdict.clone())
    };
    assert_eq!(verdict(service).as_deref(), Some("exempt:service_account"));
    assert_eq!(verdict(listed).as_deref(), Some("exempt:exempt_list"));
    assert_eq!(
        verdict(world.admin).as_deref(),
        Some("exempt:last_user_manager")
    );
    assert_eq!(verdict(plain).as_deref(), Some("lock"));

    lock_idle_at(&mut env, at).await;
    for user in [service, listed, world.admin] {
        assert_eq!(status(&env, user).await, "active", "user {user}");
    }
    assert_eq!(status(&env, plain).await, "locked");
}

/// 21 idle of 100 active trips the breaker: nobody locked there, a hold, an audit row and
/// an event; 19 of 100 in another account are locked. The held account stays held on the
/// next run; a run confirming it locks its 21.
async fn the_breaker_holds_above_its_share_until_confirmed(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let held = seed_world(&env, 1).await;
    let clear = seed_world(&env, 1).await;
    let at = t0() + Duration::days(95);
    let mut idle = Vec::new();
    for (world, idle_count) in [(&held, 21), (&clear, 19)] {
        let recent = active_agents(&env, world, "r", 99 - idle_count, at - Duration::days(1)).await;
        let gone = active_agents(&env, world, "i", idle_count, t0()).await;
        last_active(&env, &[world.admin], at - Duration::days(1)).await;
        assert_eq!(recent.len() + gone.len() + 1, 100);
        idle.push(gone);
    }
    lock_idle_at(&mut env, at).await;
    for user in &idle[0] {
        assert_eq!(status(&env, *user).await, "active");
    }
    for user in &idle[1] {
        assert_eq!(status(&env, *user).await, "locked");
    }
    assert_eq!(holds(&env, held.account).await, 1);
    assert_eq!(holds(&env, clear.account).await, 0);
    let held_audits = env
        .scalar_text_param(
            "SELECT COUNT(*) FROM audit_log WHERE entity_id = $1 AND action = $2",
            held.account,
            "sweep_held",
        )
        .await;
    assert_eq!(held_audits, 1);
    let held_events = env
        .scalar(
            "SELECT COUNT(*) FROM events WHERE account_id = $1 AND changes LIKE '%sweep_held%'",
            held.account,
        )
        .await;
    assert_eq!(held_events, 1);

    // The next night: still held, nobody locked, no second hold.
    lock_idle_at(&mut env, at + Duration::days(1)).await;
    assert_eq!(status(&env, idle[0][0]).await, "active");
    assert_eq!(holds(&env, held.account).await, 1);

    // An administrator confirms: this run locks the 21.
    env.clock.set(at + Duration::days(1));
    let confirm = LockIdleUsers {
        at: Some(at + Duration::days(1)),
        account_id: Some(held.account),
        confirm_accounts: vec![held.account],
    };
    env.run(&confirm).await;
    for user in &idle[0] {
        assert_eq!(status(&env, *user).await, "locked");
    }
    assert_eq!(holds(&env, held.account).await, 0);
    let notices = idle.iter().flatten().count();
    assert_eq!(env.mail(notices).await.len(), notices);
}

async fn holds(env: &TestEnv, account: i64) -> i64 {
    env.scalar(
        "SELECT COUNT(*) FROM sweep_holds WHERE account_id = $1 AND confirmed_at IS NULL",
        account,
    )
    .await
}

/// Each stage (14, 7, 1 days before) is sent once, in the user's language with the date;
/// not again the next night; activity moves the deadline and starts a fresh set.
async fn warning_stages_are_sent_once_each(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let wes = seed_agent(&env, &world, "Wes", "fr").await;
    last_active(&env, &[wes], t0()).await;
    last_active(&env, &[world.admin], t0() + Duration::days(80)).await;
    active_agents(&env, &world, "f", 4, t0() + Duration::days(80)).await;
    let deadline = t0() + Duration::days(90);
    let mut sent = 0;
    for stage in [14, 7, 1] {
        lock_idle_at(&mut env, deadline - Duration::days(stage)).await;
        sent += 1;
        assert_eq!(
            emails(&env, wes, "idle_lock_warning").await,
            sent,
            "stage {stage}"
        );
        let mail = env.mail(sent as usize).await.pop().unwrap();
        assert!(
            mail.subject().starts_with("Connectez-vous"),
            "{}",
            mail.subject()
        );
        assert!(
            mail.text().contains("2026-06-08 12:00 UTC"),
            "{}",
            mail.text()
        );
        // The next night, within the same stage's window: nothing more.
        if stage > 1 {
            lock_idle_at(&mut env, deadline - Duration::days(stage - 1)).await;
            assert_eq!(emails(&env, wes, "idle_lock_warning").await, sent);
        }
    }
    // Active again 12 hours before the lock: the old deadline is gone, no lock; a new set
    // starts 14 days before the new deadline.
    let active_again = deadline - Duration::hours(12);
    last_active(&env, &[wes], active_again).await;
    lock_idle_at(&mut env, deadline).await;
    assert_eq!(status(&env, wes).await, "active");
    assert_eq!(emails(&env, wes, "idle_lock_warning").await, 3);
    lock_idle_at(&mut env, active_again + Duration::days(76)).await;
    assert_eq!(emails(&env, wes, "idle_lock_warning").await, 4);
    let markers = env
        .scalar(
            "SELECT COUNT(DISTINCT deadline) FROM user_warning_markers WHERE user_id = $1",
            wes,
        )
        .await;
    assert_eq!(markers, 2);
}

/// One batch warning and locking many users at once (their markers, changes and emails
/// each recorded together): every one due gets exactly one email of the right kind, in
/// their language; one already warned for this stage gets none; the locked ones one notice.
async fn a_batch_warns_and_locks_many_at_once(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let deadline = t0() + Duration::days(90);
    let at = deadline - Duration::days(14);
    last_active(&env, &[world.admin], at).await;
    active_agents(&env, &world, "busy", 30, at).await;
    let mut due = Vec::new();
    for (n, language) in ["fr", "es", "pt", "en"].iter().enumerate() {
        let user = seed_agent(&env, &world, &format!("Due{n}"), language).await;
        last_active(&env, &[user], t0()).await;
        due.push((user, *language));
    }
    let already = seed_agent(&env, &world, "Already", "en").await;
    last_active(&env, &[already], t0()).await;
    exec_at(
        &env,
        "INSERT INTO user_warning_markers (user_id, kind, deadline, stage_days, sent_at)
         VALUES ($2, 'idle_lock', $1, 14, $1)",
        Some(deadline),
        already,
    )
    .await;
    let mut idle = Vec::new();
    for n in 0..3 {
        let user = seed_agent(&env, &world, &format!("Gone{n}"), "en").await;
        last_active(&env, &[user], t0() - Duration::days(20)).await;
        idle.push(user);
    }
    lock_idle_at(&mut env, at).await;
    for (user, language) in &due {
        assert_eq!(
            emails(&env, *user, "idle_lock_warning").await,
            1,
            "{language}"
        );
        let language_of_mail = text(
            &env,
            "SELECT language FROM email_messages WHERE user_id = $1",
            *user,
        )
        .await;
        assert_eq!(&language_of_mail, language);
        assert_eq!(status(&env, *user).await, "active");
    }
    assert_eq!(emails(&env, already, "idle_lock_warning").await, 0);
    for user in &idle {
        assert_eq!(status(&env, *user).await, "locked");
        assert_eq!(emails(&env, *user, "locked_idle").await, 1);
        assert_eq!(emails(&env, *user, "idle_lock_warning").await, 0);
    }
    // Every email recorded has its SendEmail job, and only one each.
    let jobs = env
        .scalar_text_param(
            "SELECT COUNT(*) FROM jobs WHERE kind = $2 AND account_id = $1",
            world.account,
            "mail::send",
        )
        .await;
    assert_eq!(jobs, 7);
}

/// A run that dies halfway (a batch fails: here a trigger refuses one user's update) keeps
/// the batches it committed; the rerun of the same job finishes the rest: every idle user
/// locked once, one audit row and one email each; a third delivery does nothing.
async fn a_rerun_after_a_partial_run_repeats_nothing(backend: Backend) {
    let env = TestEnv::start_with(backend, |settings| settings.sweeps.batch_size = 3).await;
    let world = seed_world(&env, 1).await;
    let at = t0() + Duration::days(95);
    last_active(&env, &[world.admin], at).await;
    active_agents(&env, &world, "r", 30, at).await;
    let idle = active_agents(&env, &world, "i", 6, t0()).await;
    let stuck = idle[4];
    match backend {
        Backend::Sqlite => {
            exec(&env, &format!(
                "CREATE TRIGGER crash BEFORE UPDATE ON users WHEN OLD.id = {stuck}
                 BEGIN SELECT RAISE(ABORT, 'worker killed'); END;"
            ))
            .await
        }
        Backend::PostgresRedis => {
            exec(&env, &format!(
                "CREATE FUNCTION crash() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'worker killed'; END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER crash BEFORE UPDATE ON users FOR EACH ROW WHEN (OLD.id = {stuck}) EXECUTE FUNCTION crash();"
            ))
            .await
        }
    }
    env.clock.set(at);
    let job = LockIdleUsers {
        at: Some(at),
        ..Default::default()
    };
    let payload = serde_json::to_string(&job).unwrap();
    let job_id = Uuid::now_v7();
    let rt = Runtime {
        store: &env.app.store,
        queue: &env.app.queue,
        clock: &env.app.clock,
        mailer: &env.app.mailer,
        settings: &env.app.settings,
        job_id,
        enqueued_at: None,
    };
    let first = handlers::run(&rt, "sweep::lock_idle_users", &payload).await;
    assert!(first.is_err(), "the first attempt dies: {first:?}");
    let locked_before = idle.iter().filter(|u| **u != stuck).count();
    let mut done = 0;
    for user in &idle {
        done += usize::from(status(&env, *user).await == "locked");
    }
    assert!(done > 0 && done < locked_before, "partly done: {done}");
    assert_eq!(status(&env, stuck).await, "active");

    match backend {
        Backend::Sqlite => exec(&env, "DROP TRIGGER crash").await,
        Backend::PostgresRedis => exec(&env, "DROP TRIGGER crash ON users").await,
    }
    assert!(
        handlers::run(&rt, "sweep::lock_idle_users", &payload)
            .await
            .is_ok()
    );
    for user in &idle {
        assert_eq!(status(&env, *user).await, "locked", "user {user}");
        assert_eq!(audits(&env, *user, "locked").await, 1);
        assert_eq!(emails(&env, *user, "locked_idle").await, 1);
    }
    let third = handlers::run(&rt, "sweep::lock_idle_users", &payload)
        .await
        .unwrap();
    assert_eq!(third, Outcome::AlreadyApplied);
}

/// Two runs at once (the scheduler's and an operator's, or a redelivery past the visibility
/// timeout), twelve rounds: the batches lock the rows they judge, every change is guarded by
/// the state it leaves and every warning by its marker, so each idle user is locked, audited
/// and emailed once, and each warning goes out once.
async fn two_runs_at_once_change_each_user_once(backend: Backend) {
    let mut env = TestEnv::start_with(backend, |settings| settings.sweeps.batch_size = 4).await;
    let world = seed_world(&env, 1).await;
    let at = t0() + Duration::days(95);
    last_active(&env, &[world.admin], at).await;
    active_agents(&env, &world, "r", 20, at).await;
    // Created 95 days before the runs, past the grace; each round's people come due in
    // their round, the later rounds' stay recently active until then.
    let mut rounds = Vec::new();
    for round in 0..12 {
        let idle = active_agents(&env, &world, &format!("i{round}x"), 2, at).await;
        let warned = active_agents(&env, &world, &format!("w{round}x"), 1, at).await;
        rounds.push((idle, warned));
    }
    env.clock.set(at);
    env.start_workers(2);
    for (round, (idle, warned)) in rounds.iter().enumerate() {
        last_active(&env, idle, t0()).await;
        last_active(&env, warned, at - Duration::days(85)).await;
        let job = LockIdleUsers {
            at: Some(at),
            ..Default::default()
        };
        let first = env.enqueue(common::request(&job)).await;
        let second = env.enqueue(common::request(&job)).await;
        assert_ne!(first.id, second.id);
        for id in [first.id, second.id] {
            assert_eq!(env.wait_for(id).await.state, "done");
        }
        for user in idle {
            assert_eq!(status(&env, *user).await, "locked", "round {round}");
            assert_eq!(audits(&env, *user, "locked").await, 1, "round {round}");
            assert_eq!(emails(&env, *user, "locked_idle").await, 1, "round {round}");
        }
        assert_eq!(
            emails(&env, warned[0], "idle_lock_warning").await,
            1,
            "round {round}"
        );
    }
}

/// A sign of use racing the sweep that would lock its user, 25 rounds: both read the
/// user's row locked, so either the activity lands first (the user stays active) or the
/// lock does (the activity of a locked user is not recorded); never a user locked with
/// the activity recorded, nor active without it.
async fn activity_racing_the_sweep_is_one_or_the_other(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let at = t0() + Duration::days(95);
    let fillers = active_agents(&env, &world, "r", 15, at).await;
    // Recently active until their round (so the breaker never counts them all).
    let racers = active_agents(&env, &world, "x", 25, at).await;
    last_active(&env, &[world.admin], at).await;
    last_active(&env, &fillers, at).await;
    env.clock.set(at);
    env.start_workers(2);
    let last_activity = "SELECT CAST(last_activity_at AS TEXT) FROM users WHERE id = $1";
    let mut outcomes = [0, 0];
    for (round, user) in racers.iter().enumerate() {
        last_active(&env, &[*user], t0()).await;
        let idle_since = text(&env, last_activity, *user).await;
        let sweep = LockIdleUsers {
            at: Some(at),
            account_id: Some(world.account),
            ..Default::default()
        };
        let activity = RecordActivity {
            account_id: world.account,
            user_id: *user,
            source: ActivitySource::Api,
            at: None,
        };
        let (first, second) = if round % 2 == 0 {
            (common::request(&sweep), common::request(&activity))
        } else {
            (common::request(&activity), common::request(&sweep))
        };
        let first = env.enqueue(first).await;
        let second = env.enqueue(second).await;
        for id in [first.id, second.id] {
            assert_eq!(env.wait_for(id).await.state, "done");
        }
        let locked = status(&env, *user).await == "locked";
        let activity_recorded = text(&env, last_activity, *user).await != idle_since;
        assert!(
            locked != activity_recorded,
            "round {round}: locked {locked}, activity recorded {activity_recorded}"
        );
        outcomes[usize::from(locked)] += 1;
    }
    // Which one wins a round is up to the workers (both happen); the invariant above is
    // what must hold whichever does.
    eprintln!(
        "activity first: {}, lock first: {}",
        outcomes[0], outcomes[1]
    );
}

/// The sweep reads users in id order, and an account's users are spread among everyone
/// else's (created in turns here, as accounts grow side by side): a batch changes users of
/// several accounts, and each account's rows stay its own: its audit rows, its emails (its
/// name in them) and its events, listing its users alone. The breaker counts every user of
/// an account over every page (batches of 4 here): 11 idle of 60 locks (18%), though 11 of
/// the first 40 would trip it (27%).
async fn accounts_share_batches_and_keep_their_own_rows(backend: Backend) {
    let mut env = TestEnv::start_with(backend, |settings| settings.sweeps.batch_size = 4).await;
    let at = t0() + Duration::days(95);
    let mut worlds = Vec::new();
    for n in 0..3 {
        let world = seed_world(&env, 1).await;
        exec(
            &env,
            &format!(
                "UPDATE accounts SET name = 'Account {n}' WHERE id = {}",
                world.account
            ),
        )
        .await;
        last_active(&env, &[world.admin], at).await;
        worlds.push(world);
    }
    // Account 1: 11 idle, then 48 busy; the others 1 idle and 4 busy; created in turns.
    let mut idle_of = vec![Vec::new(), Vec::new(), Vec::new()];
    for turn in 0..11 {
        for (n, world) in worlds.iter().enumerate() {
            if turn < if n == 1 { 11 } else { 1 } {
                let user = active_agents(&env, world, &format!("idle{turn}x"), 1, t0()).await;
                idle_of[n].extend(user);
            }
        }
    }
    for turn in 0..48 {
        for (n, world) in worlds.iter().enumerate() {
            if turn < if n == 1 { 48 } else { 4 } {
                active_agents(&env, world, &format!("busy{turn}x"), 1, at).await;
            }
        }
    }
    let accounts: Vec<_> = worlds.into_iter().zip(idle_of).collect();
    let job = lock_idle_at(&mut env, at).await;
    assert_eq!(job.state, "done", "{job:?}");
    for (n, (world, idle)) in accounts.iter().enumerate() {
        for user in idle {
            assert_eq!(status(&env, *user).await, "locked", "account {n}");
            assert_eq!(audits(&env, *user, "locked").await, 1);
            let audited_in = env
                .scalar(
                    "SELECT account_id FROM audit_log WHERE entity_id = $1 AND action = 'locked'",
                    *user,
                )
                .await;
            assert_eq!(audited_in, world.account);
            let email = text(
                &env,
                "SELECT CAST(account_id AS TEXT) || ' ' || variables FROM email_messages
                  WHERE user_id = $1",
                *user,
            )
            .await;
            assert!(
                email.starts_with(&format!("{} ", world.account))
                    && email.contains(&format!("\"account_name\":\"Account {n}\"")),
                "{email}"
            );
        }
        let events = env
            .scalar_text_param(
                "SELECT COUNT(*) FROM events WHERE account_id = $1 AND kind = $2",
                world.account,
                "sweep::lock_idle_users",
            )
            .await;
        assert!(events >= 1, "account {n} has its event");
        // Each user the account's events list is one it locked, and each once, though
        // batches commit side by side (PostgreSQL).
        let mut listed = users_listed_in_events(&env, world.account).await;
        listed.sort_unstable();
        let mut locked = idle.clone();
        locked.sort_unstable();
        assert_eq!(
            listed, locked,
            "account {n}'s events list its locked users once"
        );
    }
    assert_eq!(holds(&env, accounts[1].0.account).await, 0, "not tripped");
    // The 13 idle users were changed in batches of 4 sorted by account: one batch held
    // users of two accounts, an event each.
    let events = env
        .scalar_text_param(
            "SELECT COUNT(*) FROM events WHERE account_id > $1 AND kind = $2",
            0,
            "sweep::lock_idle_users",
        )
        .await;
    assert_eq!(events, 5, "4 batches, one of them about 2 accounts");
}

/// The last manager an idle account keeps is exempt, so the breaker does not count them:
/// the admin (the only manager) and 2 agents of 10 idle is 2 to lock (20%), not 3 (30%).
async fn the_kept_manager_is_not_counted_by_the_breaker(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let at = t0() + Duration::days(95);
    last_active(&env, &[world.admin], t0()).await;
    let idle = active_agents(&env, &world, "idle", 2, t0()).await;
    active_agents(&env, &world, "busy", 7, at).await;
    lock_idle_at(&mut env, at).await;
    assert_eq!(holds(&env, world.account).await, 0, "not tripped");
    assert_eq!(
        status(&env, world.admin).await,
        "active",
        "the last manager"
    );
    for user in idle {
        assert_eq!(status(&env, user).await, "locked");
    }
}

on_both_backends!(
    accounts_share_batches_and_keep_their_own_rows,
    the_kept_manager_is_not_counted_by_the_breaker,
    a_batch_warns_and_locks_many_at_once,
    activity_racing_the_sweep_is_one_or_the_other,
    two_runs_at_once_change_each_user_once,
    the_90_day_boundary_is_an_instant,
    every_kind_of_activity_moves_the_deadline,
    new_users_have_a_grace,
    each_exemption_keeps_its_user,
    the_breaker_holds_above_its_share_until_confirmed,
    warning_stages_are_sent_once_each,
    a_rerun_after_a_partial_run_repeats_nothing,
);
