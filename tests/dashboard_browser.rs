//! The operators' dashboard (`/admin`): its sign-in, roles, CSRF checks and escaping over
//! plain HTTP on both backends, and an operator's retry of a dead job in a real headless
//! Chromium (Debian's `chromium` and `chromium-driver`, driven over WebDriver).
//!
//! `DASHBOARD_SCREENSHOTS=docs cargo test --test dashboard_browser` also saves the PNGs the
//! README shows.

mod common;

use common::Backend;
use common::dashboard::{
    Browser, Dashboard, FAILURE_LIMIT, LICENSES_OF_USER, OPERATOR, SESSION_TTL_MINS, VIEWER,
    dashboard, encode, hidden_csrf, set_cookie, set_cookie_line,
};
use common::http_client::request;
use fantoccini::Locator;
use lifecycle::queue::EnqueueRequest;
use lifecycle_jobs::{Actor, CreateUser, UserKind};
use uuid::Uuid;

async fn every_admin_route_refuses_an_unauthenticated_request(backend: Backend) {
    let dash = dashboard(backend, |_| {}).await;
    let job = dash.dead_job;
    let (_, csrf) = dash.session(OPERATOR).await;
    let forged = "lifecycle_admin=0123456789abcdef";
    for cookie in ["", forged] {
        for path in [
            "/admin",
            "/admin/jobs",
            "/admin/jobs?state=dead",
            &format!("/admin/jobs/{job}"),
        ] {
            let answer = dash.get(path, cookie).await;
            assert_eq!(answer.status, 303, "GET {path} with {cookie:?}: {answer:?}");
            assert!(
                answer
                    .headers
                    .to_ascii_lowercase()
                    .contains("location: /admin/login"),
                "{answer:?}"
            );
        }
        for path in [
            format!("/admin/jobs/{job}/retry"),
            "/admin/logout".to_string(),
        ] {
            let answer = dash.post(&path, cookie, &format!("csrf={csrf}")).await;
            assert_eq!(
                answer.status, 401,
                "POST {path} with {cookie:?}: {answer:?}"
            );
        }
    }
    assert_eq!(dash.job_state(job).await, "dead");

    // A session ends after its time to live, and after a sign-out.
    let (cookies, _) = dash.session(OPERATOR).await;
    dash.env
        .clock
        .advance(chrono::Duration::minutes(i64::from(SESSION_TTL_MINS) + 1));
    assert_eq!(dash.get("/admin", &cookies).await.status, 303);
    let (cookies, _) = dash.session(OPERATOR).await;
    let page = dash.get("/admin", &cookies).await;
    let signed_out = dash
        .post(
            "/admin/logout",
            &cookies,
            &format!("csrf={}", hidden_csrf(&page.body)),
        )
        .await;
    assert_eq!(signed_out.status, 303, "{signed_out:?}");
    assert_eq!(dash.get("/admin", &cookies).await.status, 303, "signed out");
}

/// An operator taken out of the configuration is signed out at once: the same database,
/// a service restarted without their entry.
async fn an_operator_removed_from_the_configuration_loses_their_session(backend: Backend) {
    let dash = dashboard(backend, |_| {}).await;
    let (cookies, _) = dash.session(OPERATOR).await;
    let mut settings = dash.env.app.settings.clone();
    settings
        .admin
        .operators
        .retain(|operator| operator.name != OPERATOR.0);
    let app = lifecycle::App::start(settings, dash.env.clock.clone())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(lifecycle::http::serve(
        app,
        listener,
        std::future::pending(),
    ));
    let answer = request(port, "GET", "/admin", &[("Cookie", &cookies)], b"").await;
    assert_eq!(answer.status, 303, "{answer:?}");
    assert_eq!(
        dash.get("/admin", &cookies).await.status,
        200,
        "still listed here"
    );
}

async fn a_viewer_sees_no_button_and_a_forged_post_is_refused(backend: Backend) {
    let dash = dashboard(backend, |_| {}).await;
    dash.set_seats_in_spain(1).await;
    let (cookies, csrf) = dash.session(VIEWER).await;
    let page = dash
        .get(&format!("/admin/jobs/{}", dash.dead_job), &cookies)
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("no free license in ES"),
        "the error is shown: {}",
        page.body
    );
    assert!(
        !page.body.contains("id=\"retry\""),
        "a viewer sees no retry button"
    );
    let forged = dash
        .post(
            &format!("/admin/jobs/{}/retry", dash.dead_job),
            &cookies,
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(forged.status, 403, "{forged:?}");
    assert!(forged.body.contains("viewers read only"), "{}", forged.body);
    assert_eq!(dash.job_state(dash.dead_job).await, "dead");
    assert_eq!(dash.env.scalar(LICENSES_OF_USER, dash.salesperson).await, 0);

    // The operator sees the button; the retry runs the job again, through its guards.
    let (cookies, csrf) = dash.session(OPERATOR).await;
    let page = dash
        .get(&format!("/admin/jobs/{}", dash.dead_job), &cookies)
        .await;
    assert!(page.body.contains("id=\"retry\""), "{}", page.body);
    let retried = dash
        .post(
            &format!("/admin/jobs/{}/retry", dash.dead_job),
            &cookies,
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(retried.status, 303, "{retried:?}");
    let mut env = dash.env;
    let job = env.wait_for(dash.dead_job).await;
    assert_eq!(job.state, "done", "{job:?}");
    assert_eq!(env.scalar(LICENSES_OF_USER, dash.salesperson).await, 1);
}

async fn a_post_without_the_csrf_token_is_refused(backend: Backend) {
    let dash = dashboard(backend, |_| {}).await;
    let (cookies, csrf) = dash.session(OPERATOR).await;
    let retry = format!("/admin/jobs/{}/retry", dash.dead_job);
    for form in [
        String::new(),
        "csrf=".into(),
        format!("csrf={}", "0".repeat(csrf.len())),
    ] {
        let answer = dash.post(&retry, &cookies, &form).await;
        assert_eq!(answer.status, 403, "{form:?}: {answer:?}");
        assert!(answer.body.contains("CSRF"), "{}", answer.body);
    }
    let sign_out = dash.post("/admin/logout", &cookies, "").await;
    assert_eq!(sign_out.status, 403, "{sign_out:?}");
    assert_eq!(dash.job_state(dash.dead_job).await, "dead");
    // The sign-in form too: without its token the right password signs nobody in.
    let form = dash.get("/admin/login", "").await;
    let login_cookie = set_cookie(&form, "lifecycle_admin_login").unwrap();
    let body = format!("name={}&password={}", OPERATOR.0, encode(OPERATOR.1));
    let answer = dash.post("/admin/login", &login_cookie, &body).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(set_cookie(&answer, "lifecycle_admin").is_none());
}

async fn the_session_cookie_is_http_only_strict_and_expiring(backend: Backend) {
    let dash = dashboard(backend, |settings| settings.admin.secure_cookies = true).await;
    let (answer, _) = dash.sign_in(OPERATOR).await;
    let cookie = set_cookie_line(&answer, "lifecycle_admin");
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/admin"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(
        cookie.contains(&format!("Max-Age={}", SESSION_TTL_MINS * 60)),
        "{cookie}"
    );
    // The database holds the token's digest only.
    let token = set_cookie(&answer, "lifecycle_admin")
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    assert!(
        !dash.env.all_rows_as_text().await.contains(&token),
        "the session token is stored hashed"
    );
    let insecure = dashboard(backend, |_| {}).await;
    let (answer, _) = insecure.sign_in(OPERATOR).await;
    assert!(!set_cookie_line(&answer, "lifecycle_admin").contains("Secure"));
}

async fn wrong_passwords_are_refused_then_limited(backend: Backend) {
    let dash = dashboard(backend, |_| {}).await;
    let (answer, cookies) = dash.sign_in((OPERATOR.0, "not the password")).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(
        answer.body.contains("Wrong name or password"),
        "{}",
        answer.body
    );
    assert_eq!(dash.get("/admin", &cookies).await.status, 303, "no session");
    for _ in 1..FAILURE_LIMIT {
        assert_eq!(
            dash.sign_in((OPERATOR.0, "still wrong")).await.0.status,
            401
        );
    }
    // The limit reached, even the right password is refused, for the window.
    let (answer, _) = dash.sign_in(OPERATOR).await;
    assert_eq!(answer.status, 429, "{answer:?}");
    assert!(
        answer.body.contains("too many failed sign-ins"),
        "{}",
        answer.body
    );
    dash.env.clock.advance(chrono::Duration::minutes(16));
    assert_eq!(
        dash.sign_in(OPERATOR).await.0.status,
        303,
        "the window has passed"
    );

    // Per address: failures spread over names count against the address.
    for attempt in 0..FAILURE_LIMIT {
        let (answer, _) = dash.sign_in((&format!("guess{attempt}"), "password")).await;
        assert_eq!(answer.status, 401);
    }
    assert_eq!(
        dash.sign_in(VIEWER).await.0.status,
        429,
        "the address is limited"
    );
}

async fn user_text_is_escaped(backend: Backend) {
    let dash = dashboard(backend, |_| {}).await;
    let job = script_job(&dash).await;
    let (cookies, _) = dash.session(OPERATOR).await;
    let page = dash.get(&format!("/admin/jobs/{job}"), &cookies).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("&lt;script&gt;alert("), "{}", page.body);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    let list = dash.get("/admin/jobs?state=any", &cookies).await;
    assert!(!list.body.contains("<script>"), "{}", list.body);
}

/// A job whose payload carries a name with a script in it (and a secret), recorded as a
/// producer's raw request; its handler refuses it.
async fn script_job(dash: &Dashboard) -> Uuid {
    let payload = serde_json::json!({
        "account_id": dash.world.account, "actor": dash.world.admin,
        "first_name": "<script>alert('pwned')</script>", "last_name": "Agent",
        "email": "x@acme.test", "country": "ES", "language": "es", "role_id": 1,
        "token": "sha256:0123456789abcdef"
    });
    let enqueued = dash
        .env
        .enqueue(EnqueueRequest {
            kind: "user::create",
            account_id: Some(dash.world.account),
            payload: payload.to_string(),
            idempotency_key: None,
            run_at_ms: None,
        })
        .await;
    enqueued.id
}

async fn the_list_filters_and_the_job_page_shows_what_a_job_did(backend: Backend) {
    let mut dash = dashboard(backend, |_| {}).await;
    let created = dash
        .env
        .run(&CreateUser {
            account_id: dash.world.account,
            actor: Actor::User(dash.world.admin),
            first_name: "Nora".into(),
            last_name: "Nueva".into(),
            email: "nora@acme.test".into(),
            country: "ES".into(),
            language: "es".into(),
            role_id: dash.world.agent_role,
            team_id: dash.world.team,
            copy_permissions_from: None,
            simulator_only: false,
            kind: UserKind::Employee,
        })
        .await;
    assert_eq!(created.state, "done", "{created:?}");
    let (cookies, _) = dash.session(VIEWER).await;
    let list = |query: &'static str| {
        let dash = &dash;
        let cookies = cookies.clone();
        async move { dash.get(&format!("/admin/jobs{query}"), &cookies).await }
    };
    let dead = dash.dead_job.to_string();
    let done = created.id.to_string();
    // Failed and dead by default, newest first.
    let default = list("").await;
    assert!(
        default.body.contains(&dead) && !default.body.contains(&done),
        "{}",
        default.body
    );
    let any = list("?state=any").await.body;
    assert!(any.contains(&dead) && any.contains(&done));
    assert!(any.find(&done) < any.find(&dead), "newest first");
    let by_kind = list("?state=any&kind=user::create").await.body;
    assert!(by_kind.contains(&done) && !by_kind.contains(&dead));
    let by_state = list("?state=done").await.body;
    assert!(by_state.contains(&done) && !by_state.contains(&dead));
    let other_account = list("?state=any&account=999").await.body;
    assert!(!other_account.contains(&done) && !other_account.contains(&dead));
    let mine = format!("/admin/jobs?state=any&account={}", dash.world.account);
    assert!(dash.get(&mine, &cookies).await.body.contains(&done));
    let bad = list("?account=abc").await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(
        bad.body.contains("account must be a number"),
        "{}",
        bad.body
    );

    // The job page: its audit rows, its event and the email it recorded.
    let page = dash.get(&format!("/admin/jobs/{done}"), &cookies).await;
    assert_eq!(page.status, 200);
    let section = |id: &str| {
        let start = page.body.find(&format!("id=\"{id}\"")).unwrap();
        page.body[start..start + page.body[start..].find("</table>").unwrap()].to_string()
    };
    assert!(section("audit").contains("created"), "{}", section("audit"));
    assert!(section("events").contains("user"), "{}", section("events"));
    assert!(
        section("emails").contains("credentials (es)"),
        "{}",
        section("emails")
    );
    assert!(section("emails").contains("nora@acme.test"));
    assert_eq!(
        dash.get("/admin/jobs/not-a-job", &cookies).await.status,
        404
    );
    assert_eq!(
        dash.get(&format!("/admin/jobs/{}", Uuid::now_v7()), &cookies)
            .await
            .status,
        404
    );
    // The overview counts it.
    let overview = dash.get("/admin", &cookies).await.body;
    assert!(overview.contains("user::create") && overview.contains("user::activate_salesperson"));
}

on_both_backends!(
    an_operator_removed_from_the_configuration_loses_their_session,
    the_list_filters_and_the_job_page_shows_what_a_job_did,
    every_admin_route_refuses_an_unauthenticated_request,
    a_viewer_sees_no_button_and_a_forged_post_is_refused,
    a_post_without_the_csrf_token_is_refused,
    the_session_cookie_is_http_only_strict_and_expiring,
    wrong_passwords_are_refused_then_limited,
    user_text_is_escaped,
);

async fn an_operator_retries_a_dead_job_in_the_browser(backend: Backend) {
    let mut dash = dashboard(backend, |_| {}).await;
    let script = script_job(&dash).await;
    dash.env.start_worker();
    let base = format!("http://127.0.0.1:{}", dash.server.port);
    let browser = Browser::start().await;

    browser.sign_in(&base, OPERATOR).await;
    let counts = browser.text("#counts").await;
    assert!(
        counts.contains("license::activate_salesperson") || counts.contains("salesperson"),
        "{counts}"
    );
    browser.screenshot("dashboard-overview").await;

    browser
        .client
        .goto(&format!("{base}/admin/jobs?state=dead"))
        .await
        .unwrap();
    let list = browser.text("#jobs").await;
    assert!(
        list.contains("no free license in ES"),
        "the dead job is listed: {list}"
    );
    browser.screenshot("dashboard-dead-jobs").await;

    // The name with a script shows as text, and no script runs on the page.
    browser
        .client
        .goto(&format!("{base}/admin/jobs/{script}"))
        .await
        .unwrap();
    assert!(
        browser
            .text("#payload")
            .await
            .contains("<script>alert('pwned')</script>")
    );
    assert!(
        browser.text("#payload").await.contains("••••••"),
        "the sealed token is masked"
    );
    let scripts = browser
        .client
        .execute("return document.scripts.length", vec![])
        .await
        .unwrap();
    assert_eq!(scripts, serde_json::json!(0));

    // The seat the activation lacked is bought; the operator retries the dead job.
    dash.set_seats_in_spain(1).await;
    browser
        .client
        .goto(&format!("{base}/admin/jobs/{}", dash.dead_job))
        .await
        .unwrap();
    assert_eq!(browser.text("#job-state").await, "dead");
    browser.screenshot("dashboard-job").await;
    browser
        .client
        .find(Locator::Css("#retry"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .client
        .wait()
        .for_element(Locator::Css("#retried"))
        .await
        .unwrap();
    let job = dash.env.wait_for(dash.dead_job).await;
    assert_eq!(job.state, "done", "{job:?}");
    browser.client.refresh().await.unwrap();
    assert_eq!(browser.text("#job-state").await, "done");
    assert!(
        browser
            .text("#attempts")
            .await
            .contains("no free license in ES"),
        "the failure stays in the history"
    );
    assert!(
        browser.text("#audit").await.contains("activated"),
        "the audit row it wrote"
    );
    assert_eq!(dash.env.scalar(LICENSES_OF_USER, dash.salesperson).await, 1);

    // A viewer: the same page, no button.
    browser.client.delete_all_cookies().await.unwrap();
    browser.sign_in(&base, VIEWER).await;
    browser
        .client
        .goto(&format!("{base}/admin/jobs/{}", dash.dead_job))
        .await
        .unwrap();
    assert!(
        browser
            .client
            .find_all(Locator::Css("#retry"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        browser
            .client
            .find_all(Locator::Css("button.action"))
            .await
            .unwrap()
            .is_empty()
    );
    browser.stop().await;
}

on_both_backends!(an_operator_retries_a_dead_job_in_the_browser);
