//! The operator's CLI on both backends: `jobs list` with each filter and keyset pages,
//! `jobs retry` (one, and every job matching a filter), `jobs discard`, `jobs pause|resume`,
//! `jobs actions`, `history --user`; and dead jobs kept past the finished ones' retention.
//! The binary runs against the test's database and queue namespace, as an operator runs it.

mod common;

use std::collections::HashSet;
use std::process::{Command, Output};

use common::{Backend, TestEnv, World, request, seed_agent, seed_world};
use lifecycle::config::QueueBackend;
use lifecycle::queue::EnqueueRequest;
use lifecycle::store::admin::{self, JobFilter, JobState};
use lifecycle_jobs::{Actor, Noop, ReassignRecords, RecordLogin};
use serde_json::Value;
use uuid::Uuid;

/// `lifecycle ARGS` on the test's database and queue, as operator `ops-test`.
async fn lifecycle(env: &TestEnv, args: &[&str]) -> Output {
    let settings = &env.app.settings;
    let mut command = Command::new(env!("CARGO_BIN_EXE_lifecycle"));
    command
        .args(args)
        .env_remove("LIFECYCLE_ENV")
        .env("DATABASE_URL", settings.database.url.expose())
        .env("REDIS_URL", settings.queue.redis_url.expose())
        .env(
            "LIFECYCLE__QUEUE__BACKEND",
            match settings.queue.backend {
                QueueBackend::Database => "database",
                QueueBackend::Redis => "redis",
            },
        )
        .env("LIFECYCLE__QUEUE__NAMESPACE", &settings.queue.namespace)
        .env(
            "LIFECYCLE__QUEUE__EVENTS_STREAM",
            &settings.queue.events_stream,
        )
        .env("LIFECYCLE_OPERATOR", "ops-test")
        .env("RUST_LOG", "warn");
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .unwrap()
}

/// Runs `lifecycle ARGS`, which must succeed; its stdout.
async fn ok(env: &TestEnv, args: &[&str]) -> String {
    let output = lifecycle(env, args).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs `lifecycle ARGS`, which must fail; its stderr.
async fn refused(env: &TestEnv, args: &[&str]) -> String {
    let output = lifecycle(env, args).await;
    assert!(!output.status.success(), "{args:?} must fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The ids `jobs list ARGS --json` prints, in order.
async fn listed(env: &TestEnv, args: &[&str]) -> Vec<Uuid> {
    let mut all = vec!["jobs", "list", "--json", "--limit", "1000"];
    all.extend_from_slice(args);
    let page: Value = serde_json::from_str(&ok(env, &all).await).unwrap();
    page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn noop_for(account_id: i64, run_at_ms: Option<i64>) -> EnqueueRequest {
    EnqueueRequest {
        run_at_ms,
        ..request(&Noop { account_id })
    }
}

fn login(world: &World, user_id: i64) -> RecordLogin {
    RecordLogin {
        account_id: world.account,
        user_id,
        succeeded: false,
        at: None,
    }
}

fn reassign(world: &World, from: i64, to: i64) -> ReassignRecords {
    ReassignRecords {
        account_id: world.account,
        from_user_id: from,
        to_user_id: to,
        actor: Actor::User(world.admin),
    }
}

async fn set_status(env: &TestEnv, user: i64, status: &str) {
    let mut tx = env.tx().await;
    match &mut tx {
        lifecycle::store::Tx::Postgres(tx) => {
            sqlx::query("UPDATE users SET status = $1 WHERE id = $2")
                .bind(status)
                .bind(user)
                .execute(&mut **tx)
                .await
                .unwrap();
        }
        lifecycle::store::Tx::Sqlite(tx) => {
            sqlx::query("UPDATE users SET status = $1 WHERE id = $2")
                .bind(status)
                .bind(user)
                .execute(&mut **tx)
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
}

async fn contact_of(env: &TestEnv, user: i64) -> i64 {
    let mut tx = env.tx().await;
    let contact = lifecycle::demo::crm_data::contact(
        &mut tx,
        env.scalar("SELECT account_id FROM users WHERE id = $1", user)
            .await,
        Some(user),
        "Contact",
        env.clock.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    contact
}

/// The CLI enqueues and retries on the system clock; the test's workers run on a clock that
/// must reach it for what the CLI queued to come due.
fn catch_up_with_the_system_clock(env: &TestEnv) {
    env.clock
        .set(chrono::Utc::now() + chrono::Duration::minutes(1));
}

async fn lists_filter_and_page_without_gaps(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let bob = seed_agent(&env, &world, "Bob", "en").await;
    // 250 jobs of account 900, 50 per instant: pages must break ties by id.
    let mut all = HashSet::new();
    for _ in 0..5 {
        let batch = (0..50).map(|_| noop_for(900, None)).collect();
        for enqueued in env.app.queue.enqueue_batch(batch).await.unwrap() {
            all.insert(enqueued.id);
        }
        env.clock.advance(chrono::Duration::seconds(1));
    }
    let bobs: HashSet<Uuid> = [
        env.enqueue(request(&login(&world, bob))).await.id,
        env.enqueue(request(&login(&world, bob))).await.id,
    ]
    .into();
    let later = env.clock.now_ms() + 3_600_000;
    let scheduled = env.enqueue(noop_for(901, Some(later))).await.id;
    all.extend(bobs.iter().copied());
    all.insert(scheduled);

    // Keyset pages of 37: every job once, newest first.
    let now_ms = env.clock.now_ms();
    let (mut seen, mut after, mut keys) = (Vec::new(), None, Vec::new());
    loop {
        let page = admin::list_jobs(env.store(), &JobFilter::default(), after, 37, now_ms)
            .await
            .unwrap();
        keys.extend(page.jobs.iter().map(|job| (job.created_at_ms, job.id)));
        seen.extend(page.jobs.iter().map(|job| job.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), all.len(), "no duplicate and no gap");
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), all);
    assert!(
        keys.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first"
    );

    // The same through the CLI, page by page.
    let (mut cli_seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let mut args = vec!["jobs", "list", "--json", "--limit", "100"];
        if let Some(cursor) = &cursor {
            args.extend(["--after", cursor.as_str()]);
        }
        let page: Value = serde_json::from_str(&ok(&env, &args).await).unwrap();
        for job in page["jobs"].as_array().unwrap() {
            cli_seen.push(job["id"].as_str().unwrap().parse::<Uuid>().unwrap());
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(cli_seen, seen);

    // Each filter.
    let as_set = |ids: Vec<Uuid>| ids.into_iter().collect::<HashSet<_>>();
    assert_eq!(
        as_set(listed(&env, &["--kind", "record-login"]).await),
        bobs
    );
    assert_eq!(
        as_set(listed(&env, &["--user", &bob.to_string()]).await),
        bobs
    );
    let tenant = world.account.to_string();
    assert_eq!(as_set(listed(&env, &["--account", &tenant]).await), bobs);
    assert_eq!(listed(&env, &["--account", "901"]).await, [scheduled]);
    assert_eq!(
        listed(&env, &["--account", "902"]).await,
        Vec::<Uuid>::new()
    );
    assert_eq!(
        as_set(listed(&env, &["--text", "\"SUCCEEDED\":FALSE"]).await),
        bobs,
        "payload text, case-insensitive"
    );
    assert!(
        listed(&env, &["--text", "100%_"]).await.is_empty(),
        "LIKE's characters are literal"
    );
    assert_eq!(
        listed(&env, &["--state", "running"]).await,
        Vec::<Uuid>::new()
    );
    // States that depend on the time: the test's clock.
    let of_state = |state| JobFilter {
        state: Some(state),
        ..JobFilter::default()
    };
    let page = admin::list_jobs(
        env.store(),
        &of_state(JobState::Scheduled),
        None,
        10,
        now_ms,
    )
    .await
    .unwrap();
    assert_eq!(
        page.jobs.iter().map(|job| job.id).collect::<Vec<_>>(),
        [scheduled]
    );
    let queued = admin::count_matching(env.store(), &of_state(JobState::Queued), now_ms)
        .await
        .unwrap();
    assert_eq!(queued, all.len() as i64 - 1);
    // The overview's counts, in the operator's states (the job due later is `scheduled`),
    // and the wait of the job due longest (the first batch, 5 s ago).
    let counts = admin::counts_by_kind_and_state(env.store(), now_ms)
        .await
        .unwrap();
    let count_of = |kind: &str, state: &str| {
        counts
            .iter()
            .find(|count| count.kind == kind && count.state == state)
            .map_or(0, |count| count.jobs)
    };
    assert_eq!(count_of("system::noop", "queued"), 250);
    assert_eq!(count_of("system::noop", "scheduled"), 1);
    assert_eq!(count_of("user::record_login", "queued"), 2);
    let oldest = admin::oldest_due_since_ms(env.store(), now_ms)
        .await
        .unwrap();
    assert_eq!(oldest.map(|since| now_ms - since), Some(5_000));

    // Bad input: one line naming the argument.
    for (argument, value) in [
        ("--state", "stuck"),
        ("--kind", "nope"),
        ("--after", "page2"),
        ("--limit", "0"),
    ] {
        let stderr = refused(&env, &["jobs", "list", argument, value]).await;
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(argument),
            "{stderr}"
        );
    }
}

async fn retry_one_and_every_job_matching_a_filter(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let bob = seed_agent(&env, &world, "Bob", "en").await;
    let carol = seed_agent(&env, &world, "Carol", "en").await;
    let contact = contact_of(&env, bob).await;
    // Carol cannot take records while deactivated: the reassignments die (G5).
    set_status(&env, carol, "deactivated").await;
    let first = env.run(&reassign(&world, bob, carol)).await;
    let second = env.run(&reassign(&world, bob, carol)).await;
    let third = env.run(&reassign(&world, bob, carol)).await;
    let ghost = env.run(&login(&world, 987_654)).await;
    for job in [&first, &second, &third, &ghost] {
        assert_eq!(job.state, "dead", "{job:?}");
    }
    let dead = listed(&env, &["--state", "dead"]).await;
    assert_eq!(dead.len(), 4);
    assert_eq!(
        listed(&env, &["--state", "dead", "--text", "does not exist"]).await,
        [ghost.id],
        "error text"
    );

    // One job: done, and the user's rows changed.
    set_status(&env, carol, "active").await;
    let out = ok(&env, &["jobs", "retry", &first.id.to_string()]).await;
    assert!(out.contains(&format!("retried {}", first.id)), "{out}");
    catch_up_with_the_system_clock(&env);
    let retried = env.wait_for(first.id).await;
    assert_eq!(retried.state, "done", "{retried:?}");
    assert_eq!(
        env.scalar("SELECT assignee_id FROM contacts WHERE id = $1", contact)
            .await,
        carol
    );
    let detail = admin::job_detail(env.store(), first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        detail.attempts.len(),
        1,
        "the earlier failure stays in the history"
    );
    assert!(!detail.audit.is_empty(), "the retry's audit rows");
    let shown = ok(&env, &["jobs", "show", &first.id.to_string()]).await;
    assert!(
        shown.contains("attempt 1:") && shown.contains("audit:"),
        "{shown}"
    );

    // A done job is not retried; two ids need --yes.
    let stderr = refused(&env, &["jobs", "retry", &first.id.to_string()]).await;
    assert!(stderr.contains("not retried"), "{stderr}");
    let (second_id, third_id) = (second.id.to_string(), third.id.to_string());
    let stderr = refused(&env, &["jobs", "retry", &second_id, &third_id]).await;
    assert!(stderr.contains("--yes"), "{stderr}");

    // Every dead reassignment, not the dead login.
    let filter = [
        "jobs",
        "retry",
        "--all",
        "--state",
        "dead",
        "--kind",
        "reassign-records",
    ];
    let output = lifecycle(&env, &filter).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("2 job(s) match"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--yes"));
    assert!(
        refused(&env, &["jobs", "retry", "--all", "--kind", "noop"])
            .await
            .contains("--state"),
        "--all needs a state"
    );
    let mut confirmed = filter.to_vec();
    confirmed.push("--yes");
    assert!(ok(&env, &confirmed).await.contains("retried 2 job(s)"));
    catch_up_with_the_system_clock(&env);
    assert_eq!(env.wait_for(second.id).await.state, "done");
    assert_eq!(env.wait_for(third.id).await.state, "done");
    assert_eq!(
        env.job(ghost.id).await.state,
        "dead",
        "not matched, not retried"
    );

    let actions: Value =
        serde_json::from_str(&ok(&env, &["jobs", "actions", "--json"]).await).unwrap();
    let actions = actions.as_array().unwrap();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[0]["action"], "retry-all");
    assert_eq!(actions[0]["job_count"], 2);
    assert!(actions[0]["target"].as_str().unwrap().contains("reassign"));
    assert_eq!(actions[1]["action"], "retry");
    assert_eq!(actions[1]["operator"], "ops-test");
    assert!(
        actions[1]["target"]
            .as_str()
            .unwrap()
            .contains(&first.id.to_string())
    );
}

async fn discard_keeps_the_job_with_its_reason(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let dead = env.run(&login(&world, 987_654)).await;
    let done = env.run_job(noop_for(900, None)).await;
    assert_eq!((dead.state.as_str(), done.state.as_str()), ("dead", "done"));

    let id = dead.id.to_string();
    assert!(
        refused(&env, &["jobs", "discard", &id])
            .await
            .contains("--reason")
    );
    assert!(
        refused(&env, &["jobs", "discard", &id, "--reason", " "])
            .await
            .contains("--reason")
    );
    let stderr = refused(
        &env,
        &["jobs", "discard", &done.id.to_string(), "--reason", "x"],
    )
    .await;
    assert!(stderr.contains("is done"), "{stderr}");
    ok(
        &env,
        &[
            "jobs",
            "discard",
            &id,
            "--reason",
            "user was deleted upstream",
        ],
    )
    .await;

    let record = env.job(dead.id).await;
    assert_eq!(record.state, "discarded");
    let error = record.last_error.unwrap();
    assert!(
        error.contains("ops-test") && error.contains("deleted upstream"),
        "{error}"
    );
    assert_eq!(listed(&env, &["--state", "discarded"]).await, [dead.id]);
    assert!(listed(&env, &["--state", "dead"]).await.is_empty());
    assert_eq!(
        admin::attempts(env.store(), dead.id).await.unwrap().len(),
        1,
        "history kept"
    );
    let actions = admin::list_actions(env.store(), 10).await.unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(
        (actions[0].action.as_str(), actions[0].reason.as_deref()),
        ("discard", Some("user was deleted upstream"))
    );
}

async fn pause_holds_a_kind_and_resume_runs_it(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let bob = seed_agent(&env, &world, "Bob", "en").await;
    assert!(
        ok(&env, &["jobs", "pause", "record-login"])
            .await
            .contains("paused user::record_login")
    );
    assert!(
        refused(&env, &["jobs", "pause", "nope"])
            .await
            .contains("unknown job kind")
    );
    // The other processes see it within the refresh interval; this one is told now.
    env.app.queue.refresh_paused_kinds().await.unwrap();
    assert!(
        admin::is_paused(env.store(), "user::record_login")
            .await
            .unwrap()
    );

    let held = env.enqueue(request(&login(&world, bob))).await.id;
    // Jobs of other kinds run meanwhile; the paused one waits, queued and unattempted.
    for _ in 0..3 {
        assert_eq!(env.run_job(noop_for(900, None)).await.state, "done");
    }
    let record = env.job(held).await;
    assert_eq!((record.state.as_str(), record.attempts), ("queued", 0));
    assert_eq!(
        env.scalar(
            "SELECT CAST(failed_logins AS BIGINT) FROM users WHERE id = $1",
            bob
        )
        .await,
        0
    );

    assert!(
        ok(&env, &["jobs", "resume", "record-login"])
            .await
            .contains("resumed user::record_login")
    );
    env.app.queue.refresh_paused_kinds().await.unwrap();
    // A delivery put aside while paused comes due again a few seconds later.
    let record = env
        .wait_for_with_clock_running(held, chrono::Duration::seconds(1))
        .await;
    assert_eq!(record.state, "done", "{record:?}");
    assert_eq!(
        env.scalar(
            "SELECT CAST(failed_logins AS BIGINT) FROM users WHERE id = $1",
            bob
        )
        .await,
        1
    );
    let actions = admin::list_actions(env.store(), 10).await.unwrap();
    let names: Vec<&str> = actions
        .iter()
        .map(|action| action.action.as_str())
        .collect();
    assert_eq!(names, ["resume", "pause"]);
}

async fn history_of_a_user_newest_first(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let bob = seed_agent(&env, &world, "Bob", "en").await;
    let carol = seed_agent(&env, &world, "Carol", "en").await;
    contact_of(&env, bob).await;
    let mut bobs = Vec::new();
    for _ in 0..2 {
        bobs.push(env.run(&login(&world, bob)).await.id);
        env.clock.advance(chrono::Duration::minutes(1));
    }
    bobs.push(env.run(&reassign(&world, bob, carol)).await.id);
    env.run(&login(&world, carol)).await;
    bobs.reverse();

    let out = ok(&env, &["history", "--user", &bob.to_string(), "--json"]).await;
    let history: Value = serde_json::from_str(&out).unwrap();
    let jobs: Vec<Uuid> = history["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(jobs, bobs, "their jobs, newest first, not Carol's");
    let audit = history["audit"].as_array().unwrap();
    assert!(!audit.is_empty());
    let times: Vec<&str> = audit
        .iter()
        .map(|row| row["at"].as_str().unwrap())
        .collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> =
        times.iter().map(|at| at.parse().unwrap()).collect();
    assert!(
        parsed.windows(2).all(|pair| pair[0] >= pair[1]),
        "{times:?}"
    );
    assert!(
        audit.iter().all(|row| row["account_id"] == world.account),
        "one tenant's rows"
    );
    // Another tenant's filter sees nothing of Bob.
    let out = ok(
        &env,
        &[
            "history",
            "--user",
            &bob.to_string(),
            "--account",
            "99999",
            "--json",
        ],
    )
    .await;
    let other: Value = serde_json::from_str(&out).unwrap();
    assert!(other["jobs"].as_array().unwrap().is_empty());
    assert!(other["audit"].as_array().unwrap().is_empty());
    assert!(refused(&env, &["history"]).await.contains("--user"));
}

async fn dead_jobs_outlive_the_retention_of_finished_ones(backend: Backend) {
    let mut env = TestEnv::start_with(backend, |settings| {
        settings.queue.retention_days = 14;
        settings.queue.dead_retention_days = 90;
    })
    .await;
    let world = seed_world(&env, 1).await;
    let done = env.run_job(noop_for(900, None)).await;
    let dead = env.run(&login(&world, 987_654)).await;
    let discarded = env.run(&login(&world, 987_655)).await;
    let operator = lifecycle::queue::admin::Operator::new("ops-test").unwrap();
    env.app
        .queue
        .discard_job(&operator, discarded.id, "duplicate")
        .await
        .unwrap();
    env.stop_worker().await;
    let budget = std::time::Duration::from_secs(60);

    env.clock.advance(chrono::Duration::days(15));
    assert_eq!(env.prune(budget).await, 2);
    let left = lifecycle::store::ledger::get(env.store(), done.id)
        .await
        .unwrap();
    assert!(left.is_none(), "done: pruned after retention_days");
    assert_eq!(env.job(dead.id).await.state, "dead", "dead: kept");
    assert!(
        lifecycle::store::ledger::get(env.store(), discarded.id)
            .await
            .unwrap()
            .is_none()
    );

    env.clock.advance(chrono::Duration::days(74));
    assert_eq!(env.prune(budget).await, 0, "89 days: still kept");
    env.clock.advance(chrono::Duration::days(2));
    assert_eq!(env.prune(budget).await, 1);
    assert!(
        lifecycle::store::ledger::get(env.store(), dead.id)
            .await
            .unwrap()
            .is_none()
    );
}

/// An operator discarding jobs while workers claim them: each job either ran (its effect
/// applied once, the discard refused) or was discarded before any attempt (no effect).
async fn discard_races_the_workers(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let operator = lifecycle::queue::admin::Operator::new("ops-test").unwrap();
    let (mut ran, mut discarded) = (0, 0);
    for round in 0..4 {
        env.stop_worker().await;
        let mut users = Vec::new();
        for n in 0..50 {
            users.push(seed_agent(&env, &world, &format!("R{round}n{n}"), "en").await);
        }
        let requests = users
            .iter()
            .map(|user| request(&login(&world, *user)))
            .collect();
        env.app.queue.enqueue_batch(requests).await.unwrap();
        let filter = JobFilter {
            state: Some(JobState::Queued),
            ..JobFilter::default()
        };
        let page = admin::list_jobs(env.store(), &filter, None, 1000, env.clock.now_ms())
            .await
            .unwrap();
        assert_eq!(page.jobs.len(), users.len(), "round {round}");
        env.start_worker();
        // Discards start once the workers have: the two race over the rest.
        let started = std::time::Instant::now();
        while admin::count_matching(env.store(), &filter, env.clock.now_ms())
            .await
            .unwrap()
            == users.len() as i64
        {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "workers start"
            );
            tokio::task::yield_now().await;
        }
        let discards: Vec<_> = page
            .jobs
            .iter()
            .map(|job| {
                let (queue, operator, id) = (env.app.queue.clone(), operator.clone(), job.id);
                tokio::spawn(async move { queue.discard_job(&operator, id, "race").await })
            })
            .collect();
        for discard in discards {
            if let Err(error) = discard.await.unwrap() {
                assert!(error.to_string().contains("only a queued"), "{error}");
            }
        }
        let started = std::time::Instant::now();
        let unfinished = |env: &TestEnv| {
            let (store, now) = (env.store().clone(), env.clock.now_ms());
            async move {
                let mut left = 0;
                for state in [JobState::Queued, JobState::Running, JobState::Retrying] {
                    let filter = JobFilter {
                        state: Some(state),
                        ..JobFilter::default()
                    };
                    left += admin::count_matching(&store, &filter, now).await.unwrap();
                }
                left
            }
        };
        while unfinished(&env).await > 0 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "the jobs settle"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        for (job, user) in page.jobs.iter().rev().zip(&users) {
            let record = env.job(job.id).await;
            let failures = env
                .scalar(
                    "SELECT CAST(failed_logins AS BIGINT) FROM users WHERE id = $1",
                    *user,
                )
                .await;
            match record.state.as_str() {
                "done" => {
                    assert_eq!(failures, 1, "ran once: {record:?}");
                    ran += 1;
                }
                "discarded" => {
                    assert_eq!((failures, record.attempts), (0, 0), "never ran: {record:?}");
                    discarded += 1;
                }
                other => panic!("job {} ended {other}", job.id),
            }
        }
    }
    println!("{backend:?}: {ran} ran, {discarded} discarded");
}

on_both_backends!(
    discard_races_the_workers,
    lists_filter_and_page_without_gaps,
    retry_one_and_every_job_matching_a_filter,
    discard_keeps_the_job_with_its_reason,
    pause_holds_a_kind_and_resume_runs_it,
    history_of_a_user_newest_first,
    dead_jobs_outlive_the_retention_of_finished_ones,
);
