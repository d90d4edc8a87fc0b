//! The whole onboarding as a CRM would run it, against `lifecycle run` as a process: a
//! producer enqueues CreateUser over HTTP; the new user's credentials arrive in the SMTP
//! sink; the link's token, handed back as ConfirmUser over HTTP, activates the user. The
//! temporary password and the link's secret appear in no log line (debug level) and in no
//! row of the database. On both backends.

mod common;

use std::time::{Duration, Instant};

use common::http_client::request;
use common::process::Service;
use common::{Backend, TestEnv, seed_world};
use lifecycle::store::users;

const TOKEN: &str = "producer-token-7c1d";

async fn post_job(port: u16, slug: &str, body: &serde_json::Value) -> String {
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let path = format!("/v1/jobs/{slug}");
    let answer = request(port, "POST", &path, &headers, body.to_string().as_bytes()).await;
    assert_eq!(answer.status, 202, "{slug}: {answer:?}");
    answer.json()["job_id"]
        .as_str()
        .expect("a job id")
        .to_string()
}

/// Polls `GET /v1/jobs/{id}` until the job is done (or fails the test when it dies).
async fn wait_done(port: u16, job_id: &str) {
    let auth = format!("Bearer {TOKEN}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = request(
            port,
            "GET",
            &format!("/v1/jobs/{job_id}"),
            &[("Authorization", auth.as_str())],
            b"",
        )
        .await;
        let status = answer.json();
        match status["state"].as_str() {
            Some("done") => return,
            Some("dead") => panic!("job {job_id} died: {status}"),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "job {job_id} did not finish: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn onboarding_over_http_keeps_secrets_out_of_logs_and_rows(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let folder = tempfile::tempdir().unwrap();
    let log = folder.path().join("service.log");
    // As verbose as an operator would ever run it.
    let extra = [
        ("LIFECYCLE__HTTP__API_TOKENS", TOKEN),
        ("RUST_LOG", "debug"),
    ];
    let mut service = Service::start(&env, &extra, Some(&log)).await;
    let port = service.port;

    let create = serde_json::json!({
        "account_id": world.account,
        "actor": world.admin,
        "first_name": "Marta",
        "last_name": "Nueva",
        "email": "marta@acme.test",
        "country": "ES",
        "language": "es",
        "role_id": world.agent_role,
        "team_id": world.team,
    });
    // Bad input is a 400 naming the field, before anything is recorded.
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    for (field, value) in [
        ("country", "XX"),
        ("email", "marta at acme"),
        ("language", "de"),
    ] {
        let mut bad = create.clone();
        bad[field] = serde_json::json!(value);
        let body = bad.to_string();
        let answer = request(
            port,
            "POST",
            "/v1/jobs/create-user",
            &headers,
            body.as_bytes(),
        )
        .await;
        assert_eq!(answer.field(), field, "{answer:?}");
    }

    let created = post_job(port, "create-user", &create).await;
    wait_done(port, &created).await;

    let mail = env.mail(1).await;
    let text = mail[0].text();
    let link = text
        .split_whitespace()
        .find(|word| word.contains("token="))
        .unwrap_or_else(|| panic!("no link in:\n{text}"));
    let query = link.split_once('?').unwrap().1;
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_string()
    };
    let token = param("token");
    let user_id: i64 = param("user").parse().unwrap();
    let password = text
        .lines()
        .find(|line| line.contains("Contraseña temporal"))
        .and_then(|line| line.split_whitespace().last())
        .expect("the temporary password line")
        .to_string();

    // The web app hands the link's token back: the user is active.
    let confirm = serde_json::json!({
        "account_id": world.account,
        "user_id": user_id,
        "token": token,
    });
    let confirmed = post_job(port, "confirm-user", &confirm).await;
    wait_done(port, &confirmed).await;
    let mut tx = env.store().begin_read().await.unwrap();
    let user = users::find(&mut tx, user_id).await.unwrap().unwrap();
    assert_eq!(user.status, "active");
    assert_eq!(user.email, "marta@acme.test");
    tx.commit().await.unwrap();

    // Stop the service and read everything it logged.
    service.terminate();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("user::create") && logged.contains("user::confirm"),
        "the log is the service's debug log:\n{}",
        &logged[..logged.len().min(2000)]
    );
    for (name, secret) in [("temporary password", &password), ("link secret", &token)] {
        assert!(
            !logged.contains(secret.as_str()),
            "the {name} is in the log"
        );
    }
    let rows = env.all_rows_as_text().await;
    for (name, secret) in [("temporary password", &password), ("link secret", &token)] {
        assert!(
            !rows.contains(secret.as_str()),
            "the {name} is in the database"
        );
    }
    assert!(
        rows.contains(&lifecycle_jobs::sha256_hex(&token)),
        "only its digest is"
    );
}

on_both_backends!(onboarding_over_http_keeps_secrets_out_of_logs_and_rows);
