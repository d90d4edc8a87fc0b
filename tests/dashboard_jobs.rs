//! The dashboard's jobs pages on both backends: the list's keyset pages and filters, a
//! user's history, the bulk actions (retry selected, retry all matching after a confirmed
//! count, discard with a reason) in a real headless Chromium, each recorded with the
//! operator's name, and who may do what (viewers, CSRF, no session).

mod common;

use std::collections::HashSet;

use common::dashboard::{
    Browser, Dashboard, LICENSES_OF_USER, OPERATOR, VIEWER, dashboard, encode,
};
use common::{Backend, request, seed_agent};
use fantoccini::Locator;
use lifecycle::queue::EnqueueRequest;
use lifecycle::store::admin::{self, OperatorAction};
use lifecycle_jobs::{ActivateSalesperson, Actor, Job, Noop};
use uuid::Uuid;

const ACTIVATE: &str = <ActivateSalesperson as Job>::NAME;
const NOOP: &str = <Noop as Job>::NAME;

/// A no-op job of `account`, queued (no worker runs these tests' no-ops unless started).
fn noop(account: i64) -> EnqueueRequest {
    EnqueueRequest {
        kind: NOOP,
        account_id: Some(account),
        payload: serde_json::to_string(&Noop {
            account_id: account,
        })
        .unwrap(),
        idempotency_key: None,
        run_at_ms: None,
    }
}

/// A new agent of the world and their activation, dead for want of a seat in Spain.
async fn dead_activation(dash: &mut Dashboard, name: &str) -> Uuid {
    let agent = seed_agent(&dash.env, &dash.world, name, "es").await;
    let job = dash
        .env
        .run(&ActivateSalesperson {
            account_id: dash.world.account,
            user_id: agent,
            actor: Actor::User(dash.world.admin),
            country: "ES".into(),
        })
        .await;
    assert_eq!(job.state, "dead", "{job:?}");
    job.id
}

/// What minijinja's HTML escaping did to a value put in an attribute.
fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The job ids of a list's rows, in the order shown.
fn listed(page: &str) -> Vec<Uuid> {
    page.split("data-job=\"")
        .skip(1)
        .map(|rest| rest[..36].parse().unwrap())
        .collect()
}

/// The href of the link with `id`, if the page has one.
fn link(page: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\" href=\"");
    let start = page.find(&marker)? + marker.len();
    Some(unescape(&page[start..start + page[start..].find('"')?]))
}

async fn actions(dash: &Dashboard) -> Vec<OperatorAction> {
    admin::list_actions(dash.env.store(), 100).await.unwrap()
}

async fn the_list_pages_by_keyset_without_gap_or_duplicate(backend: Backend) {
    let mut dash = dashboard(backend, |_| {}).await;
    // The no-ops stay queued.
    dash.env.stop_worker().await;
    let other = dash.world.account + 1;
    let enqueued = dash
        .env
        .app
        .queue
        .enqueue_batch((0..120).map(|_| noop(other)).collect())
        .await
        .unwrap();
    let expected: HashSet<Uuid> = enqueued.iter().map(|job| job.id).collect();
    assert_eq!(expected.len(), 120);
    let (cookies, _) = dash.session(VIEWER).await;
    let mut path = format!("/admin/jobs?state=queued&kind={}", encode(NOOP));
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let page = dash.get(&path, &cookies).await;
        assert_eq!(page.status, 200, "{path}: {page:?}");
        let rows = listed(&page.body);
        assert!(
            rows.windows(2).all(|pair| pair[0] > pair[1]),
            "newest first within a page"
        );
        if let Some(last) = seen.last() {
            assert!(rows.first().is_none_or(|first| first < last), "no overlap");
        }
        sizes.push(rows.len());
        seen.extend(rows);
        match link(&page.body, "next-page") {
            Some(next) => {
                assert!(
                    next.contains("state=queued") && next.contains("kind=system%3A%3Anoop"),
                    "the next link keeps the filter: {next}"
                );
                assert!(next.contains("after="), "{next}");
                path = next;
            }
            None => break,
        }
    }
    assert_eq!(sizes, [50, 50, 20], "pages of 50");
    let unique: HashSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicate");
    assert_eq!(unique, expected, "no gap, nothing else");
    assert!(!seen.contains(&dash.dead_job), "the dead job is not queued");
}

async fn each_filter_narrows_and_a_bad_value_names_its_field(backend: Backend) {
    let mut dash = dashboard(backend, |_| {}).await;
    // The no-ops stay queued.
    dash.env.stop_worker().await;
    let other = dash.world.account + 1;
    let old_noop = dash.env.enqueue(noop(other)).await.id;
    let day_one = dash.env.clock.now();
    dash.env.clock.advance(chrono::Duration::days(3));
    let new_noop = dash.env.enqueue(noop(other)).await.id;
    let payload_text = dash
        .env
        .enqueue(EnqueueRequest {
            kind: NOOP,
            account_id: Some(other),
            payload: serde_json::json!({ "account_id": other, "note": "Zebra-Crossing" })
                .to_string(),
            idempotency_key: None,
            run_at_ms: None,
        })
        .await
        .id;
    let dead = dash.dead_job;
    let (cookies, _) = dash.session(VIEWER).await;
    let shown = |query: String| {
        let dash = &dash;
        let cookies = cookies.clone();
        async move {
            let page = dash.get(&format!("/admin/jobs?{query}"), &cookies).await;
            assert_eq!(page.status, 200, "{query}: {page:?}");
            listed(&page.body).into_iter().collect::<HashSet<_>>()
        }
    };
    let set = |ids: &[Uuid]| ids.iter().copied().collect::<HashSet<_>>();
    assert_eq!(
        shown(String::new()).await,
        set(&[dead]),
        "failed by default"
    );
    assert_eq!(
        shown("state=any".into()).await,
        set(&[dead, old_noop, new_noop, payload_text])
    );
    assert_eq!(
        shown(format!("state=any&kind={}", encode(ACTIVATE))).await,
        set(&[dead])
    );
    assert_eq!(
        shown("state=queued".into()).await,
        set(&[old_noop, new_noop, payload_text])
    );
    assert_eq!(shown("state=dead".into()).await, set(&[dead]));
    assert_eq!(
        shown(format!("state=any&account={}", dash.world.account)).await,
        set(&[dead])
    );
    assert_eq!(
        shown(format!("state=any&user={}", dash.salesperson)).await,
        set(&[dead])
    );
    assert_eq!(
        shown("state=any&text=zebra-crossing".into()).await,
        set(&[payload_text]),
        "text in the payload, any case"
    );
    assert_eq!(
        shown(format!("state=any&text={}", encode("NO FREE LICENSE"))).await,
        set(&[dead]),
        "text in the error"
    );
    let day = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d").to_string();
    assert_eq!(
        shown(format!("state=queued&to={}", day(day_one))).await,
        set(&[old_noop]),
        "to a date includes that day"
    );
    let now = dash.env.clock.now();
    assert_eq!(
        shown(format!("state=queued&from={}", day(now))).await,
        set(&[new_noop, payload_text])
    );
    let minute = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%dT%H:%M").to_string();
    assert_eq!(
        shown(format!(
            "state=queued&from={}&to={}",
            encode(&minute(day_one)),
            encode(&minute(day_one + chrono::Duration::minutes(1)))
        ))
        .await,
        set(&[old_noop]),
        "a datetime-local range"
    );

    for (query, named) in [
        ("state=zombie", "unknown state"),
        ("kind=nope", "unknown kind"),
        ("account=abc", "account must be a number"),
        ("user=4x", "user must be a number"),
        ("from=yesterday", "from must be a date"),
        ("to=2026-02-30", "to must be a date"),
        ("from=2026-03-02&to=2026-03-01", "from must be before to"),
        ("after=page-2", "after must be a job id"),
    ] {
        let answer = dash.get(&format!("/admin/jobs?{query}"), &cookies).await;
        assert_eq!(answer.status, 400, "{query}: {answer:?}");
        assert!(answer.body.contains(named), "{query}: {}", answer.body);
    }
}

async fn the_user_page_shows_their_jobs_and_audit_trail_only(backend: Backend) {
    let mut dash = dashboard(backend, |_| {}).await;
    let bruno = dash.salesperson;
    // Another user's job, and a job of another account naming Bruno's id.
    let carla = seed_agent(&dash.env, &dash.world, "Carla", "es").await;
    let carla_job = dash
        .env
        .run(&ActivateSalesperson {
            account_id: dash.world.account,
            user_id: carla,
            actor: Actor::User(dash.world.admin),
            country: "ES".into(),
        })
        .await
        .id;
    let elsewhere = dash
        .env
        .enqueue(request(&ActivateSalesperson {
            account_id: dash.world.account + 1,
            user_id: bruno,
            actor: Actor::User(dash.world.admin),
            country: "ES".into(),
        }))
        .await
        .id;
    // Bruno's activation succeeds on retry: the audit rows of it are his trail.
    dash.set_seats_in_spain(1).await;
    let operator = lifecycle::queue::admin::Operator::new("ana").unwrap();
    dash.env
        .app
        .queue
        .retry_jobs(&operator, &[dash.dead_job])
        .await
        .unwrap();
    assert_eq!(dash.env.wait_for(dash.dead_job).await.state, "done");
    dash.env.wait_for(elsewhere).await;

    let (cookies, _) = dash.session(VIEWER).await;
    let page = dash
        .get(
            &format!("/admin/users?user={bruno}&account={}", dash.world.account),
            &cookies,
        )
        .await;
    assert_eq!(page.status, 200, "{page:?}");
    let jobs = listed(&page.body);
    assert_eq!(jobs, [dash.dead_job], "his job only: {}", page.body);
    assert!(
        page.body
            .contains(&format!("href=\"/admin/jobs/{}\"", dash.dead_job))
    );
    let audit = section(&page.body, "user-audit");
    assert!(audit.contains("activated"), "{audit}");
    assert!(
        section(&page.body, "user-attempts").contains("no free license in ES"),
        "the failed attempt stays in his history"
    );
    assert!(!page.body.contains(&carla_job.to_string()));
    assert!(!page.body.contains(&elsewhere.to_string()));
    // Without an account, the job of the other account naming his id shows; with the
    // other account, only it, and none of his audit rows.
    let everywhere = dash
        .get(&format!("/admin/users?user={bruno}"), &cookies)
        .await;
    assert_eq!(
        listed(&everywhere.body).into_iter().collect::<HashSet<_>>(),
        HashSet::from([dash.dead_job, elsewhere])
    );
    let other_account = dash
        .get(
            &format!(
                "/admin/users?user={bruno}&account={}",
                dash.world.account + 1
            ),
            &cookies,
        )
        .await;
    assert_eq!(listed(&other_account.body), [elsewhere]);
    assert!(
        !section(&other_account.body, "user-audit").contains("activated"),
        "{}",
        other_account.body
    );
    // The search box of every page leads here; a bad id is a 400 naming the field.
    assert!(page.body.contains("action=\"/admin/users\""));
    let bad = dash.get("/admin/users?user=bruno", &cookies).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("user must be a number"), "{}", bad.body);
}

fn section(page: &str, id: &str) -> String {
    let start = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}: {page}"));
    page[start..start + page[start..].find("</table>").unwrap()].to_string()
}

async fn text_with_a_script_shows_as_text_in_the_list_and_the_user_page(backend: Backend) {
    let dash = dashboard(backend, |_| {}).await;
    let operator = lifecycle::queue::admin::Operator::new("ana").unwrap();
    dash.env
        .app
        .queue
        .discard_job(&operator, dash.dead_job, "<script>alert('pwned')</script>")
        .await
        .unwrap();
    let (cookies, _) = dash.session(VIEWER).await;
    for path in [
        "/admin/jobs?state=discarded".to_string(),
        format!("/admin/users?user={}", dash.salesperson),
    ] {
        let page = dash.get(&path, &cookies).await;
        assert_eq!(listed(&page.body), [dash.dead_job], "{path}: {}", page.body);
        assert!(
            page.body
                .contains("&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;&#x2f;script&gt;"),
            "{path}: {}",
            page.body
        );
        assert!(!page.body.contains("<script>"), "{path}");
    }
}

async fn retry_all_matching_asks_again_when_more_match_than_confirmed(backend: Backend) {
    let mut dash = dashboard(backend, |_| {}).await;
    let (cookies, csrf) = dash.session(OPERATOR).await;
    let filter = format!("state=dead&kind={}", encode(ACTIVATE));
    let confirm = dash
        .get(&format!("/admin/jobs/retry-matching?{filter}"), &cookies)
        .await;
    assert_eq!(confirm.status, 200, "{confirm:?}");
    assert!(
        confirm
            .body
            .contains("<strong id=\"match-count\">1</strong>")
    );
    assert!(confirm.body.contains("name=\"confirmed\" value=\"1\""));
    // A second job dies before the operator confirms 1.
    let second = dead_activation(&mut dash, "Carla").await;
    let answer = dash
        .post(
            "/admin/jobs/retry-matching",
            &cookies,
            &format!("csrf={csrf}&confirmed=1&{filter}"),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.body.contains("id=\"changed\""), "{}", answer.body);
    assert!(
        answer
            .body
            .contains("<strong id=\"match-count\">2</strong>")
    );
    assert_eq!(
        dash.job_state(dash.dead_job).await,
        "dead",
        "nothing retried"
    );
    assert_eq!(dash.job_state(second).await, "dead");
    assert!(actions(&dash).await.is_empty());

    // Only a failed state can be retried in bulk; the confirmed count must be a number.
    let queued = dash
        .get("/admin/jobs/retry-matching?state=queued", &cookies)
        .await;
    assert_eq!(queued.status, 400, "{queued:?}");
    assert!(
        queued.body.contains("state must be failed, dead"),
        "{}",
        queued.body
    );
    let no_count = dash
        .post(
            "/admin/jobs/retry-matching",
            &cookies,
            &format!("csrf={csrf}&confirmed=all&{filter}"),
        )
        .await;
    assert_eq!(no_count.status, 400, "{no_count:?}");
    assert!(
        no_count.body.contains("confirmed must be"),
        "{}",
        no_count.body
    );

    let answer = dash
        .post(
            "/admin/jobs/retry-matching",
            &cookies,
            &format!("csrf={csrf}&confirmed=2&{filter}"),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer.body.contains("Retried 2 of the 2"),
        "{}",
        answer.body
    );
    let recorded = actions(&dash).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(
        (recorded[0].operator.as_str(), recorded[0].action.as_str()),
        ("ana", "retry-all")
    );
    assert_eq!(recorded[0].job_count, 2);

    // Both die again (still no seat); a bulk retry bounded by 1 queues exactly one.
    for id in [dash.dead_job, second] {
        assert_eq!(dash.env.wait_for(id).await.state, "dead");
    }
    dash.env.stop_worker().await;
    let filter = admin::JobFilter {
        state: Some(admin::JobState::Dead),
        ..admin::JobFilter::default()
    };
    let operator = lifecycle::queue::admin::Operator::new("ana").unwrap();
    let retried = dash
        .env
        .app
        .queue
        .retry_matching_at_most(&operator, &filter, 1)
        .await
        .unwrap();
    assert_eq!(retried, 1);
    let mut states = vec![
        dash.job_state(dash.dead_job).await,
        dash.job_state(second).await,
    ];
    states.sort();
    assert_eq!(states, ["dead", "queued"]);

    // Retry selected: the skipped ones are named with why; bad ids are a 400.
    let still_dead = if dash.job_state(second).await == "dead" {
        second
    } else {
        dash.dead_job
    };
    let unknown = Uuid::now_v7();
    let answer = dash
        .post(
            "/admin/jobs/retry",
            &cookies,
            &format!("csrf={csrf}&id={still_dead}&id={unknown}&back=state%3Ddead"),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer
            .body
            .contains("Retried 1 of the 2 selected jobs; skipped 1."),
        "{}",
        answer.body
    );
    assert!(section(&answer.body, "skipped").contains(&format!("{unknown}")));
    assert!(section(&answer.body, "skipped").contains("no such job"));
    assert_eq!(dash.job_state(still_dead).await, "queued");
    for (form, named) in [
        ("id=42", "id must be a job id"),
        ("back=", "select at least one job"),
    ] {
        let answer = dash
            .post(
                "/admin/jobs/retry",
                &cookies,
                &format!("csrf={csrf}&{form}"),
            )
            .await;
        assert_eq!(answer.status, 400, "{form}: {answer:?}");
        assert!(answer.body.contains(named), "{}", answer.body);
    }

    // Nothing matching: the count is 0 and there is nothing to confirm.
    let none = dash
        .get("/admin/jobs/retry-matching?state=discarded", &cookies)
        .await;
    assert_eq!(none.status, 200);
    assert!(none.body.contains("id=\"nothing\"") && !none.body.contains("id=\"confirm\""));

    // Discarding needs a reason.
    let blank = dash
        .post(
            &format!("/admin/jobs/{}/discard", Uuid::now_v7()),
            &cookies,
            &format!("csrf={csrf}&reason=+++"),
        )
        .await;
    assert_eq!(blank.status, 400, "{blank:?}");
    assert!(blank.body.contains("reason is required"), "{}", blank.body);
}

async fn a_viewer_sees_no_action_and_every_new_route_is_guarded(backend: Backend) {
    let dash = dashboard(backend, |_| {}).await;
    let job = dash.dead_job;
    let posts = [
        ("/admin/jobs/retry".to_string(), format!("id={job}")),
        (
            "/admin/jobs/retry-matching".to_string(),
            "state=dead&confirmed=1".to_string(),
        ),
        (
            format!("/admin/jobs/{job}/discard"),
            "reason=not+needed".to_string(),
        ),
        (format!("/admin/jobs/{job}/retry"), String::new()),
    ];
    let (viewer, viewer_csrf) = dash.session(VIEWER).await;
    let list = dash.get("/admin/jobs?state=dead", &viewer).await;
    assert_eq!(listed(&list.body), [job]);
    for button in ["retry-selected", "retry-matching", "type=\"checkbox\""] {
        assert!(!list.body.contains(button), "a viewer sees no {button}");
    }
    let page = dash.get(&format!("/admin/jobs/{job}"), &viewer).await;
    assert!(!page.body.contains("id=\"discard\"") && !page.body.contains("id=\"retry\""));
    let confirm = dash
        .get("/admin/jobs/retry-matching?state=dead", &viewer)
        .await;
    assert_eq!(confirm.status, 403, "{confirm:?}");
    for (path, form) in &posts {
        let answer = dash
            .post(path, &viewer, &format!("{form}&csrf={viewer_csrf}"))
            .await;
        assert_eq!(answer.status, 403, "viewer POST {path}: {answer:?}");
        assert!(answer.body.contains("viewers read only"), "{}", answer.body);
    }

    // The operator sees them; without the CSRF token each POST is refused.
    let (operator, csrf) = dash.session(OPERATOR).await;
    let list = dash.get("/admin/jobs?state=dead", &operator).await;
    for button in ["retry-selected", "retry-matching", "type=\"checkbox\""] {
        assert!(list.body.contains(button), "an operator sees {button}");
    }
    let page = dash.get(&format!("/admin/jobs/{job}"), &operator).await;
    assert!(page.body.contains("id=\"discard\""));
    for (path, form) in &posts {
        for token in [String::new(), "0".repeat(csrf.len())] {
            let answer = dash
                .post(path, &operator, &format!("{form}&csrf={token}"))
                .await;
            assert_eq!(answer.status, 403, "POST {path} csrf={token:?}: {answer:?}");
            assert!(answer.body.contains("CSRF"), "{}", answer.body);
        }
    }

    // Without a session: the pages send to the sign-in, the actions are refused.
    for cookie in ["", "lifecycle_admin=0123456789abcdef"] {
        for path in [
            "/admin/users?user=1".to_string(),
            "/admin/jobs/retry-matching?state=dead".to_string(),
            format!("/admin/jobs?state=dead&after={job}"),
        ] {
            let answer = dash.get(&path, cookie).await;
            assert_eq!(answer.status, 303, "GET {path}: {answer:?}");
        }
        for (path, form) in &posts {
            let answer = dash
                .post(path, cookie, &format!("{form}&csrf={csrf}"))
                .await;
            assert_eq!(answer.status, 401, "POST {path}: {answer:?}");
        }
    }
    assert_eq!(dash.job_state(job).await, "dead");
    assert!(actions(&dash).await.is_empty(), "nothing was done");
}

on_both_backends!(
    the_list_pages_by_keyset_without_gap_or_duplicate,
    each_filter_narrows_and_a_bad_value_names_its_field,
    the_user_page_shows_their_jobs_and_audit_trail_only,
    text_with_a_script_shows_as_text_in_the_list_and_the_user_page,
    retry_all_matching_asks_again_when_more_match_than_confirmed,
    a_viewer_sees_no_action_and_every_new_route_is_guarded,
);

/// Retry two of three dead jobs, retry all matching a kind, discard with a reason: in a real
/// browser, each recorded with the operator's name.
async fn an_operator_acts_on_jobs_in_bulk_in_the_browser(backend: Backend) {
    let mut dash = dashboard(backend, |_| {}).await;
    let first = dash.dead_job;
    let second = dead_activation(&mut dash, "Carla").await;
    let third = dead_activation(&mut dash, "Dario").await;
    let fourth = dead_activation(&mut dash, "Eva").await;
    let other_kind = {
        let payload = serde_json::json!({ "account_id": dash.world.account,
            "user_id": dash.salesperson, "succeeded": "not a boolean" });
        let id = dash
            .env
            .enqueue(EnqueueRequest {
                kind: <lifecycle_jobs::RecordLogin as Job>::NAME,
                account_id: Some(dash.world.account),
                payload: payload.to_string(),
                idempotency_key: None,
                run_at_ms: None,
            })
            .await
            .id;
        assert_eq!(dash.env.wait_for(id).await.state, "dead");
        id
    };
    dash.set_seats_in_spain(4).await;
    let base = format!("http://127.0.0.1:{}", dash.server.port);
    let browser = Browser::start().await;
    browser.sign_in(&base, OPERATOR).await;

    // Two of the three oldest dead activations, ticked and retried.
    browser
        .client
        .goto(&format!("{base}/admin/jobs?state=dead"))
        .await
        .unwrap();
    for id in [first, second] {
        browser
            .client
            .find(Locator::Css(&format!("input[value=\"{id}\"]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    click(&browser, "#retry-selected").await;
    let result = wait_text(&browser, "#result").await;
    assert!(result.contains("Retried 2 of the 2 selected"), "{result}");
    for id in [first, second] {
        assert_eq!(dash.env.wait_for(id).await.state, "done");
    }
    for id in [third, fourth, other_kind] {
        assert_eq!(dash.job_state(id).await, "dead", "not selected");
    }
    assert_eq!(dash.env.scalar(LICENSES_OF_USER, dash.salesperson).await, 1);

    // Every dead activation, by a kind filter: the count, confirmed, only those retried.
    browser
        .client
        .goto(&format!(
            "{base}/admin/jobs?state=dead&kind={}",
            encode(ACTIVATE)
        ))
        .await
        .unwrap();
    click(&browser, "#retry-matching").await;
    assert_eq!(wait_text(&browser, "#match-count").await, "2");
    click(&browser, "#confirm").await;
    let result = wait_text(&browser, "#result").await;
    assert!(result.contains("Retried 2 of the 2"), "{result}");
    for id in [third, fourth] {
        assert_eq!(dash.env.wait_for(id).await.state, "done");
    }
    assert_eq!(dash.job_state(other_kind).await, "dead", "another kind");

    // The other kind's job, discarded from its page with a reason.
    browser
        .client
        .goto(&format!("{base}/admin/jobs/{other_kind}"))
        .await
        .unwrap();
    browser
        .client
        .find(Locator::Css("#discard-reason"))
        .await
        .unwrap()
        .send_keys("the producer sent a bad payload; resent as #812")
        .await
        .unwrap();
    click(&browser, "#discard").await;
    wait_text(&browser, "#discarded").await;
    assert_eq!(browser.text("#job-state").await, "discarded");
    assert!(
        browser
            .text("#last-error")
            .await
            .contains("discarded by ana: the producer sent a bad payload; resent as #812")
    );
    assert_eq!(dash.job_state(other_kind).await, "discarded");
    browser.stop().await;

    let recorded = actions(&dash).await;
    let mut done: Vec<_> = recorded
        .iter()
        .map(|action| {
            (
                action.operator.as_str(),
                action.action.as_str(),
                action.job_count,
            )
        })
        .collect();
    done.sort();
    assert_eq!(
        done,
        [
            ("ana", "discard", 1),
            ("ana", "retry", 2),
            ("ana", "retry-all", 2)
        ]
    );
    let retry = recorded
        .iter()
        .find(|action| action.action == "retry")
        .unwrap();
    assert!(
        retry.target.contains(&first.to_string()) && retry.target.contains(&second.to_string())
    );
    let discard = recorded
        .iter()
        .find(|action| action.action == "discard")
        .unwrap();
    assert_eq!(
        discard.reason.as_deref(),
        Some("the producer sent a bad payload; resent as #812")
    );
}

async fn click(browser: &Browser, css: &str) {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn wait_text(browser: &Browser, css: &str) -> String {
    browser
        .client
        .wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

on_both_backends!(an_operator_acts_on_jobs_in_bulk_in_the_browser);
