//! The dashboard's overview beyond the job counts, on both backends: the sweeps' schedules
//! and last runs, the accounts held by the idle-lock breaker with their Confirm button
//! (clicked in a real headless Chromium), each job kind's Pause/Resume button, the audit
//! page of operators' actions, the trailing-slash redirects, and operators kept in the
//! database (`lifecycle admin add-operator --store`, `remove-operator`), and the job
//! counts of a big ledger taken in the background.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use common::Backend;
use common::dashboard::{Browser, Dashboard, OPERATOR, VIEWER, dashboard, encode};
use common::process::lifecycle_command;
use common::sweeps::{active_agents, last_active, status};
use common::{World, seed_world, start_time};
use fantoccini::Locator;
use lifecycle::config::SweepSchedule;
use lifecycle::job_counts::{EXACT_COUNTS_UP_TO, JobCounts, KeptCounts};
use lifecycle::metrics::METRICS;
use lifecycle::schedule::firing::fire;
use lifecycle::schedule::{Schedule, Schedules};
use lifecycle::store::{Store, admin};
use lifecycle_jobs::{ActivitySource, LockIdleUsers, RecordActivity};

const OPEN_HOLDS: &str =
    "SELECT COUNT(*) FROM sweep_holds WHERE account_id = $1 AND confirmed_at IS NULL";

/// `[schedule.<sweep>]` entries for the overview to show; none of them due while the test
/// runs (the worker's scheduler would fire a due one on its own).
fn scheduled(settings: &mut lifecycle::config::Settings) {
    for (sweep, cron, zone) in [
        ("prune", "0 0 1 1 *", None),
        ("release_licenses", "0 3 * * 1", Some("Europe/Madrid")),
    ] {
        settings.schedule.sweeps.insert(
            sweep.to_string(),
            SweepSchedule {
                cron: Some(cron.to_string()),
                time_zone: zone.map(str::to_string),
            },
        );
    }
}

/// The overview lists each sweep with its expression, zone and next firing, as `lifecycle
/// schedule` does, and, once a sweep ran, its last run: tick, state, outcome, rows changed.
async fn the_overview_shows_the_schedules_and_a_last_run(backend: Backend) {
    let mut dash = dashboard(backend, scheduled).await;
    let (cookies, _) = dash.session(OPERATOR).await;
    let page = dash.get("/admin", &cookies).await;
    assert!(
        page.body
            .contains("<title>Overview · lifecycle admin</title>"),
        "the tables are in the page, not in its title: {}",
        page.body
    );
    assert_eq!(page.body.matches("id=\"sweeps\"").count(), 1);
    let sweeps = section(&page.body, "id=\"sweeps\"");
    let row = |sweeps: &str, name: &str| {
        let start = sweeps
            .find(&format!("data-sweep=\"{name}\""))
            .unwrap_or_else(|| panic!("no {name} row: {sweeps}"));
        sweeps[start..start + sweeps[start..].find("</tr>").unwrap()].to_string()
    };
    let release = row(&sweeps, "release_licenses");
    assert!(release.contains("0 3 * * 1"), "{release}");
    // minijinja escapes `/` too.
    assert!(release.contains("Europe&#x2f;Madrid"), "{release}");
    assert!(
        release.contains("2026-03-16 03:00:00 +01:00"),
        "the next firing, Monday 03:00 in Madrid: {release}"
    );
    assert!(release.contains("never"), "{release}");
    assert!(row(&sweeps, "lock_idle").contains("(disabled)"), "{sweeps}");
    assert!(row(&sweeps, "prune").contains("never"), "{sweeps}");

    // The prune sweep fires a tick and runs.
    let prune = Schedule::new(Schedules::sweep("prune").unwrap(), "*/10 * * * *", Tz::UTC).unwrap();
    let tick: DateTime<Utc> = "2026-03-10T11:50:00Z".parse().unwrap();
    let job = fire(&dash.env.app, &prune, tick).await.unwrap().unwrap();
    assert_eq!(dash.env.wait_for(job).await.state, "done");
    let page = dash.get("/admin", &cookies).await;
    let prune = row(&section(&page.body, "id=\"sweeps\""), "prune");
    assert!(
        prune.contains("tick 2026-03-10 11:50:00 +00:00"),
        "the last run's tick: {prune}"
    );
    assert!(
        prune.contains(&format!("href=\"/admin/jobs/{job}\">done</a>")),
        "its job, done: {prune}"
    );
    assert!(
        prune.contains("finished jobs pruned"),
        "the outcome: {prune}"
    );
    assert!(
        prune.contains("<td class=\"num\">0</td>"),
        "rows changed: {prune}"
    );
}

/// An account whose idle lock trips the breaker (2 idle of 5 active, over 20%) is listed
/// with its numbers; a viewer sees no Confirm button and their forged POST is refused, as
/// is a POST without the CSRF token; the operator clicks Confirm in the browser: the idle
/// users are locked, the hold is gone, and the action is on the audit page with their name.
async fn an_operator_confirms_a_held_account_in_the_browser(backend: Backend) {
    let mut dash = dashboard(backend, |_| {}).await;
    let (held, idle) = held_account(&mut dash).await;

    // The viewer reads the hold, without a button; a forged POST is refused.
    let (cookies, csrf) = dash.session(VIEWER).await;
    let page = dash.get("/admin", &cookies).await;
    let holds = section(&page.body, "id=\"held-accounts\"");
    let row = format!("data-account=\"{}\"", held.account);
    assert!(holds.contains(&row), "the held account is listed: {holds}");
    for cell in [
        "<td class=\"num\">2</td>",
        "<td class=\"num\">5</td>",
        "40 %",
    ] {
        assert!(holds.contains(cell), "{cell} in {holds}");
    }
    assert!(
        !holds.contains("Confirm"),
        "a viewer sees no button: {holds}"
    );
    let confirm = "/admin/sweeps/lock-idle/confirm";
    let form = format!("account={}&csrf={csrf}", held.account);
    let forged = dash.post(confirm, &cookies, &form).await;
    assert_eq!(forged.status, 403, "{forged:?}");
    // The operator's POST without the CSRF token, or with another session's, is refused.
    let (cookies, csrf) = dash.session(OPERATOR).await;
    let without = dash
        .post(confirm, &cookies, &format!("account={}", held.account))
        .await;
    assert_eq!(without.status, 403, "{without:?}");
    let bad_account = dash
        .post(confirm, &cookies, &format!("account=abc&csrf={csrf}"))
        .await;
    assert_eq!(bad_account.status, 400, "{bad_account:?}");
    assert!(bad_account.body.contains("account"), "{}", bad_account.body);
    let not_held = dash
        .post(
            confirm,
            &cookies,
            &format!("account={}&csrf={csrf}", dash.world.account),
        )
        .await;
    assert_eq!(not_held.status, 409, "{not_held:?}");
    assert_eq!(dash.env.scalar(OPEN_HOLDS, held.account).await, 1);
    assert_eq!(actions(&dash, "confirm-hold").await, 0);

    let base = format!("http://127.0.0.1:{}", dash.server.port);
    let browser = Browser::start().await;
    browser.sign_in(&base, OPERATOR).await;
    browser.click(&format!("#confirm-{}", held.account)).await;
    browser
        .client
        .wait()
        .for_element(Locator::Css("#done"))
        .await
        .unwrap();
    assert!(
        browser
            .text("#done")
            .await
            .contains(&held.account.to_string())
    );
    wait_until(|| async {
        dash.env.scalar(OPEN_HOLDS, held.account).await == 0
            && status(&dash.env, idle[1]).await == "locked"
    })
    .await;
    for user in &idle {
        assert_eq!(status(&dash.env, *user).await, "locked");
    }
    assert_eq!(actions(&dash, "confirm-hold").await, 1);
    browser
        .client
        .goto(&format!("{base}/admin/actions"))
        .await
        .unwrap();
    let audit = browser.text("#actions").await;
    assert!(
        audit.contains(&format!("ana confirm-hold account {}", held.account)),
        "{audit}"
    );
    browser.client.goto(&format!("{base}/admin")).await.unwrap();
    assert!(
        browser
            .text("#held-accounts")
            .await
            .contains("No account held.")
    );
    browser.stop().await;
}

/// An account the idle-lock breaker holds: 2 of its 5 active users idle (40%, over the
/// 20% share), the sweep run over it once. Returns it and its idle users.
async fn held_account(dash: &mut Dashboard) -> (World, Vec<i64>) {
    let held = seed_world(&dash.env, 1).await;
    let at = start_time() + chrono::Duration::days(95);
    active_agents(
        &dash.env,
        &held,
        "recent",
        2,
        at - chrono::Duration::days(1),
    )
    .await;
    let idle = active_agents(&dash.env, &held, "idle", 2, start_time()).await;
    last_active(&dash.env, &[held.admin], at - chrono::Duration::days(1)).await;
    dash.env.clock.set(at);
    let run = dash
        .env
        .run(&LockIdleUsers {
            at: Some(at),
            account_id: Some(held.account),
            confirm_accounts: vec![],
        })
        .await;
    assert_eq!(run.state, "done", "{run:?}");
    assert_eq!(dash.env.scalar(OPEN_HOLDS, held.account).await, 1);
    for user in &idle {
        assert_eq!(status(&dash.env, *user).await, "active");
    }

    (held, idle)
}

/// `lifecycle sweep lock-idle --account A --confirm` does what the Confirm button does,
/// through the same function: the idle users locked, the hold gone, the action recorded
/// under the name of whoever ran it.
async fn the_cli_confirm_is_the_same_action(backend: Backend) {
    let mut dash = dashboard(backend, |_| {}).await;
    let (held, idle) = held_account(&mut dash).await;
    let at = dash.env.clock.now().to_rfc3339();
    let account = held.account.to_string();
    let output = lifecycle_command(&dash.env)
        .args([
            "sweep",
            "lock-idle",
            "--account",
            &account,
            "--confirm",
            "--at",
            &at,
        ])
        .env("USER", "carla")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let job = text(&output.stdout).trim().parse().expect("the job's id");
    // The command stamped its job with the real time: the worker's clock moves past it (the
    // sweep judges as of `--at`).
    dash.env.clock.set(Utc::now());
    assert_eq!(dash.env.wait_for(job).await.state, "done");
    for user in &idle {
        assert_eq!(status(&dash.env, *user).await, "locked");
    }
    assert_eq!(dash.env.scalar(OPEN_HOLDS, held.account).await, 0);
    let recorded = lifecycle::store::admin::list_actions(dash.env.store(), 10)
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(
        (recorded[0].operator.as_str(), recorded[0].action.as_str()),
        ("carla", "confirm-hold")
    );
    assert_eq!(recorded[0].target, format!("account {}", held.account));
}

/// The operator pauses a kind from the browser: a job of that kind, enqueued first, stays
/// queued while a job of another kind runs; resumed, it runs. Both actions are on the
/// audit page with the operator's name, newest first.
async fn an_operator_pauses_and_resumes_a_kind_in_the_browser(backend: Backend) {
    let mut dash = dashboard(backend, |_| {}).await;
    let base = format!("http://127.0.0.1:{}", dash.server.port);
    let browser = Browser::start().await;
    browser.sign_in(&base, OPERATOR).await;
    let kind_button = |kind: &str| format!("form[data-kind=\"{kind}\"] button");
    assert_eq!(browser.text(&kind_button("system::noop")).await, "Pause");
    browser.click(&kind_button("system::noop")).await;
    browser
        .client
        .wait()
        .for_element(Locator::Css("#done"))
        .await
        .unwrap();
    assert_eq!(browser.text(&kind_button("system::noop")).await, "Resume");
    assert!(browser.text("#job-kinds").await.contains("paused"));

    let paused = dash
        .env
        .enqueue(common::noop_requests(1).remove(0))
        .await
        .id;
    let other = dash
        .env
        .enqueue(common::request(&RecordActivity {
            account_id: dash.world.account,
            user_id: dash.world.admin,
            source: ActivitySource::Api,
            at: None,
        }))
        .await
        .id;
    assert_eq!(dash.env.wait_for(other).await.state, "done");
    assert_eq!(
        dash.job_state(paused).await,
        "queued",
        "the paused kind waits"
    );

    browser.client.goto(&format!("{base}/admin")).await.unwrap();
    browser.click(&kind_button("system::noop")).await;
    browser
        .client
        .wait()
        .for_element(Locator::Css("#done"))
        .await
        .unwrap();
    assert_eq!(browser.text(&kind_button("system::noop")).await, "Pause");
    // On Redis a paused kind's delivery waits in the delayed set for 5 s of the (test's)
    // clock before it is looked at again.
    let resumed = dash
        .env
        .wait_for_with_clock_running(paused, chrono::Duration::seconds(1))
        .await;
    assert_eq!(resumed.state, "done", "resumed, it runs");

    browser.click("nav a[href=\"/admin/actions\"]").await;
    let audit = browser.text("#actions").await;
    let resume = audit.find("ana resume system::noop").expect(&audit);
    let pause = audit.find("ana pause system::noop").expect(&audit);
    assert!(resume < pause, "newest first: {audit}");
    browser.stop().await;
}

/// `/admin/` and the other pages typed with a trailing slash redirect to the page; every
/// new route refuses a request without a session; a viewer's POST is refused; an unknown
/// kind is a 400 naming the field.
async fn new_routes_refuse_the_unauthenticated_and_slashes_redirect(backend: Backend) {
    let dash = dashboard(backend, |_| {}).await;
    for (typed, target) in [
        ("/admin/", "/admin"),
        ("/admin/jobs/", "/admin/jobs"),
        ("/admin/jobs/?state=dead", "/admin/jobs?state=dead"),
        ("/admin/actions/", "/admin/actions"),
    ] {
        let answer = dash.get(typed, "").await;
        assert_eq!(answer.status, 308, "{typed}: {answer:?}");
        assert!(
            answer
                .headers
                .to_ascii_lowercase()
                .contains(&format!("location: {target}\r")),
            "{typed}: {answer:?}"
        );
    }
    let (_, csrf) = dash.session(OPERATOR).await;
    let forged = "lifecycle_admin=0123456789abcdef";
    for cookie in ["", forged] {
        let answer = dash.get("/admin/actions", cookie).await;
        assert_eq!(answer.status, 303, "{answer:?}");
        for (path, form) in [
            ("/admin/kinds/pause", "kind=system%3A%3Anoop"),
            ("/admin/kinds/resume", "kind=system%3A%3Anoop"),
            ("/admin/sweeps/lock-idle/confirm", "account=1"),
        ] {
            let answer = dash
                .post(path, cookie, &format!("{form}&csrf={csrf}"))
                .await;
            assert_eq!(
                answer.status, 401,
                "POST {path} with {cookie:?}: {answer:?}"
            );
        }
    }
    let (cookies, csrf) = dash.session(VIEWER).await;
    let refused = dash
        .post(
            "/admin/kinds/pause",
            &cookies,
            &format!("kind=system%3A%3Anoop&csrf={csrf}"),
        )
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let (cookies, csrf) = dash.session(OPERATOR).await;
    let without = dash
        .post("/admin/kinds/pause", &cookies, "kind=system%3A%3Anoop")
        .await;
    assert_eq!(without.status, 403, "{without:?}");
    let unknown = dash
        .post(
            "/admin/kinds/pause",
            &cookies,
            &format!("kind=nope&csrf={csrf}"),
        )
        .await;
    assert_eq!(unknown.status, 400, "{unknown:?}");
    assert!(unknown.body.contains("kind"), "{}", unknown.body);
    assert!(
        lifecycle::store::admin::paused_kinds(dash.env.store())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(actions(&dash, "pause").await, 0);
}

/// An operator stored in the database by `lifecycle admin add-operator --store` signs in;
/// removed by `remove-operator`, their session ends at once; a viewer stored there reads
/// only. The password is never printed, only its argon2 hash kept.
async fn operators_in_the_database_sign_in_and_are_removed(backend: Backend) {
    let dash = dashboard(backend, |_| {}).await;
    let dora = ("dora", "dora's long password");
    let walt = ("walt", "walt reads only, ok");
    for ((name, password), role) in [(dora, "operator"), (walt, "viewer")] {
        let added = admin(
            &dash,
            &["add-operator", "--name", name, "--role", role, "--store"],
            password,
        );
        assert!(added.status.success(), "{}", text(&added.stderr));
        let printed = format!("{}{}", text(&added.stdout), text(&added.stderr));
        assert!(
            !printed.contains(password),
            "the password is not printed: {printed}"
        );
    }
    let stored = dash
        .env
        .scalar_text_param(
            "SELECT COUNT(*) FROM admin_operators WHERE $1 = 1 AND name = $2 \
             AND password_hash LIKE '$argon2id$%'",
            1,
            "dora",
        )
        .await;
    assert_eq!(stored, 1, "only the argon2 hash is kept");
    let again = admin(
        &dash,
        &[
            "add-operator",
            "--name",
            "dora",
            "--role",
            "viewer",
            "--store",
        ],
        "another long one",
    );
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("already"),
        "{}",
        text(&again.stderr)
    );

    // A wrong password is refused as for an operator of the configuration.
    let (wrong, _) = dash.sign_in(("dora", "not the password")).await;
    assert_eq!(wrong.status, 401, "{wrong:?}");

    let (cookies, csrf) = dash.session(dora).await;
    let page = dash.get("/admin", &cookies).await;
    assert!(page.body.contains("dora"), "signed in as dora");
    let paused = dash
        .post(
            "/admin/kinds/pause",
            &cookies,
            &format!("kind={}&csrf={csrf}", encode("system::noop")),
        )
        .await;
    assert_eq!(paused.status, 303, "dora acts: {paused:?}");

    let (viewer_cookies, viewer_csrf) = dash.session(walt).await;
    let page = dash.get("/admin", &viewer_cookies).await;
    assert!(
        !page.body.contains("class=\"resume\""),
        "a viewer sees no button"
    );
    let refused = dash
        .post(
            "/admin/kinds/resume",
            &viewer_cookies,
            &format!("kind={}&csrf={viewer_csrf}", encode("system::noop")),
        )
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");

    let removed = admin(&dash, &["remove-operator", "--name", "dora"], "");
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    assert_eq!(
        dash.get("/admin", &cookies).await.status,
        303,
        "dora's session ended"
    );
    let (gone, _) = dash.sign_in(dora).await;
    assert_eq!(gone.status, 401, "dora signs in no more: {gone:?}");
    assert_eq!(
        dash.get("/admin", &viewer_cookies).await.status,
        200,
        "walt stays"
    );
    let missing = admin(&dash, &["remove-operator", "--name", "dora"], "");
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing.stderr));
    // The configuration's operator is looked up first, and is not stored over.
    let shadow = admin(
        &dash,
        &[
            "add-operator",
            "--name",
            "ana",
            "--role",
            "viewer",
            "--store",
        ],
        "a long enough one",
    )
    .status
    .code();
    assert_eq!(shadow, Some(0), "ana is not in the command's configuration");
    let (_, cookies) = dash.sign_in(OPERATOR).await;
    let page = dash.get("/admin", &cookies).await;
    assert!(
        page.body.contains("<span class=\"role\">operator</span>"),
        "the configuration's ana, an operator, wins over the table's viewer"
    );
}

/// `admin add-operator`'s bad arguments exit 2, as the README's exit-code policy says for a
/// usage error, naming the argument; the password is read before nothing else is refused.
#[test]
fn add_operator_usage_errors_exit_2() {
    let folder = tempfile::tempdir().unwrap();
    for (args, password, says) in [
        (
            ["--name", "ana", "--role", "admin"],
            "a long enough secret",
            "invalid --role",
        ),
        (
            ["--name", "a b", "--role", "operator"],
            "a long enough secret",
            "invalid --name",
        ),
        (
            ["--name", "ana", "--role", "operator"],
            "short",
            "at least 12",
        ),
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lifecycle"))
            .current_dir(folder.path())
            .args(["admin", "add-operator"])
            .args(args)
            .env_remove("LIFECYCLE_ENV")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&output.stderr)
        );
        assert!(
            text(&output.stderr).contains(says),
            "{}",
            text(&output.stderr)
        );
        assert!(output.stdout.is_empty(), "nothing printed");
    }
}

/// Runs `lifecycle admin ARGS` against the test's database, the password on stdin.
fn admin(dash: &Dashboard, args: &[&str], password: &str) -> Output {
    let mut child = lifecycle_command(&dash.env)
        .arg("admin")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The overview counts a small ledger on every view (a job recorded a moment ago is in it).
/// Past `EXACT_COUNTS_UP_TO` rows it shows the counts last taken, with their time: counting
/// a million jobs reads them all, so the metrics' refresh counts them in the background and
/// a view reads what it kept (or counts once, when nothing is kept yet).
async fn a_big_ledgers_overview_shows_the_counts_last_taken(backend: Backend) {
    let dash = dashboard(backend, |_| {}).await;
    let (cookies, _) = dash.session(OPERATOR).await;
    let store = dash.env.store();
    let now_ms = dash.env.app.clock.now_ms();
    let counts = |page: &str| section(page, "id=\"counts\"");

    let page = dash.get("/admin", &cookies).await;
    assert!(!counts(&page.body).contains("system::noop"), "none yet");
    add_done_noops(&dash, 1).await;
    let page = dash.get("/admin", &cookies).await;
    assert!(
        counts(&page.body).contains("system::noop"),
        "a small ledger is counted on each view"
    );
    assert!(!page.body.contains("id=\"counted-at\""), "{}", page.body);

    add_done_noops(&dash, EXACT_COUNTS_UP_TO).await;
    let estimate = admin::ledger_rows_estimate(store).await.unwrap();
    assert!(estimate > EXACT_COUNTS_UP_TO, "{estimate}");
    let page = dash.get("/admin", &cookies).await;
    assert!(
        page.body.contains("id=\"counted-at\""),
        "a big ledger's counts are shown with their time: {}",
        counts(&page.body)
    );

    // The rule on counts no background refresh of the served app touches.
    let noops_done = |counts: &JobCounts| {
        counts
            .rows
            .iter()
            .find(|row| row.kind == "system::noop" && row.state == "done")
            .map_or(0, |row| row.jobs)
    };
    let kept = KeptCounts::default();
    let (first, counted_now) = kept.for_overview(store, now_ms).await.unwrap();
    assert!(counted_now, "nothing kept yet: counted once");
    assert_eq!(noops_done(&first), EXACT_COUNTS_UP_TO + 1);
    add_done_noops(&dash, 1).await;
    let (again, counted_now) = kept.for_overview(store, now_ms).await.unwrap();
    assert!(!counted_now, "the kept counts are shown");
    assert_eq!(
        noops_done(&again),
        EXACT_COUNTS_UP_TO + 1,
        "not counted again"
    );
    // What the metrics' refresh reads, it keeps for the overview.
    kept.keep(METRICS.read_ledger(store, now_ms).await.unwrap())
        .await;
    let (refreshed, _) = kept.for_overview(store, now_ms).await.unwrap();
    assert_eq!(noops_done(&refreshed), EXACT_COUNTS_UP_TO + 2);
}

/// Records `count` finished `system::noop` jobs set-based, then lets PostgreSQL estimate
/// the ledger's size again (as autovacuum would).
async fn add_done_noops(dash: &Dashboard, count: i64) {
    let now_ms = dash.env.app.clock.now_ms();
    match dash.env.store() {
        Store::Postgres(pool) => {
            sqlx::query(
                "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at_ms,
                                   created_at_ms, finished_at_ms)
                 SELECT gen_random_uuid(), 'system::noop', '{}', 'done', 1, 1, $1, $1, $1
                   FROM generate_series(1, $2)",
            )
            .bind(now_ms)
            .bind(count)
            .execute(pool)
            .await
            .unwrap();
            sqlx::query("ANALYZE jobs").execute(pool).await.unwrap();
        }
        Store::Sqlite(pool) => {
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
                 INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at_ms,
                                   created_at_ms, finished_at_ms)
                 SELECT randomblob(16), 'system::noop', '{}', 'done', 1, 1, $1, $1, $1 FROM n",
            )
            .bind(now_ms)
            .bind(count)
            .execute(pool)
            .await
            .unwrap();
        }
    }
}

/// The table of the page that starts with `marker`, up to its end.
fn section(page: &str, marker: &str) -> String {
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker}: {page}"));
    let end = start + page[start..].find("</table>").unwrap();
    page[start..end].to_string()
}

/// Recorded operator actions named `action`.
async fn actions(dash: &Dashboard, action: &str) -> i64 {
    dash.env
        .scalar_text_param(
            "SELECT COUNT(*) FROM operator_actions WHERE $1 = 1 AND action = $2",
            1,
            action,
        )
        .await
}

/// Waits (up to a minute) for the workers to reach a state; not a timed assertion.
async fn wait_until<F, Fut>(reached: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !reached().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reached in a minute"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_backends!(
    the_overview_shows_the_schedules_and_a_last_run,
    an_operator_confirms_a_held_account_in_the_browser,
    the_cli_confirm_is_the_same_action,
    an_operator_pauses_and_resumes_a_kind_in_the_browser,
    new_routes_refuse_the_unauthenticated_and_slashes_redirect,
    operators_in_the_database_sign_in_and_are_removed,
    a_big_ledgers_overview_shows_the_counts_last_taken,
);
