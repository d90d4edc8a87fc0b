//! The enqueue API as a producer service sees it: HTTP requests to the router served on a
//! port of its own, answers checked as they arrive on the wire, jobs followed into the
//! ledger and through a worker. On both backends.

mod common;

use std::time::{Duration, Instant};

use common::http_client::{Answer, request, serve};
use common::{Backend, TestEnv};
use lifecycle::store::ledger;
use uuid::Uuid;

const TOKEN: &str = "test-token-5b8f";

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// POST /v1/jobs/{slug} with the test token, a JSON body and maybe an idempotency key.
async fn post_job(port: u16, slug: &str, json: &str, key: Option<&str>) -> Answer {
    let auth = bearer();
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    request(
        port,
        "POST",
        &format!("/v1/jobs/{slug}"),
        &headers,
        json.as_bytes(),
    )
    .await
}

async fn get_job(port: u16, id: &str) -> Answer {
    let auth = bearer();
    request(
        port,
        "GET",
        &format!("/v1/jobs/{id}"),
        &[("Authorization", auth.as_str())],
        b"",
    )
    .await
}

async fn start(backend: Backend) -> TestEnv {
    TestEnv::start_with(backend, |settings| {
        settings.http.api_tokens = vec![lifecycle::config::Secret::new(TOKEN.to_string())];
    })
    .await
}

/// A sign of use of the world's admin: a public kind that runs to `done` (the no-op is an
/// internal kind, not enqueued over HTTP).
fn activity(world: &common::World) -> String {
    serde_json::json!({ "account_id": world.account, "user_id": world.admin, "source": "api" })
        .to_string()
}

async fn an_accepted_job_is_recorded_once_and_runs(backend: Backend) {
    let mut env = start(backend).await;
    let server = serve(&env).await;
    let world = common::seed_world(&env, 1).await;
    let body = activity(&world);

    let first = post_job(server.port, "record-activity", &body, Some("crm-42")).await;
    assert_eq!(first.status, 202, "{first:?}");
    assert_eq!(first.json()["created"], true);
    let id = first.json()["job_id"].as_str().unwrap().to_string();

    // The producer retries: the same job, not a second one.
    let again = post_job(server.port, "record-activity", &body, Some("crm-42")).await;
    assert_eq!(again.status, 202, "{again:?}");
    assert_eq!(again.json()["job_id"], id.as_str());
    assert_eq!(again.json()["created"], false);
    assert_eq!(
        ledger::count_in_state(env.store(), "queued").await.unwrap(),
        1
    );

    let shown = get_job(server.port, &id).await;
    assert_eq!(shown.status, 200, "{shown:?}");
    assert_eq!(shown.json()["state"], "queued");
    assert_eq!(shown.json()["kind"], "user::record_activity");

    let record = env.wait_for(Uuid::parse_str(&id).unwrap()).await;
    assert_eq!(record.state, ledger::state::DONE);
    assert_eq!(
        record.payload,
        format!(
            r#"{{"account_id":{},"user_id":{},"source":"api"}}"#,
            world.account, world.admin
        )
    );
    assert_eq!(record.idempotency_key.as_deref(), Some("crm-42"));

    let shown = get_job(server.port, &id).await.json();
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["state"], "done");
    assert_eq!(shown["attempts"], 1);
    assert!(shown["max_attempts"].as_i64().unwrap() >= 1);
    assert!(shown["last_error"].is_null());
    assert!(shown["created_at_ms"].is_i64());
    assert!(shown["finished_at_ms"].is_i64());

    // Without a key every request is a job of its own.
    let other = post_job(server.port, "record-activity", &body, None).await;
    assert_eq!(other.status, 202, "{other:?}");
    assert_ne!(other.json()["job_id"], id.as_str());
}

async fn bad_input_is_refused_naming_the_field(backend: Backend) {
    let env = start(backend).await;
    let server = serve(&env).await;
    let port = server.port;
    let user = r#"{"account_id": 1, "user_id": 4, "actor": "system"}"#;

    // A good one first, so that the refusals below are about their input only.
    assert_eq!(
        post_job(port, "deactivate-user", user, None).await.status,
        202
    );

    let malformed = post_job(port, "deactivate-user", r#"{"account_id": 1,"#, None).await;
    assert_eq!(malformed.field(), "payload");
    assert!(
        malformed.json()["error"].as_str().unwrap().contains("EOF"),
        "{malformed:?}"
    );
    assert_eq!(
        post_job(port, "delete-everything", user, None)
            .await
            .field(),
        "kind"
    );
    let missing = r#"{"account_id": 1, "actor": "system"}"#;
    assert_eq!(
        post_job(port, "deactivate-user", missing, None)
            .await
            .field(),
        "user_id"
    );
    let zero = r#"{"account_id": 1, "user_id": 0, "actor": "system"}"#;
    assert_eq!(
        post_job(port, "deactivate-user", zero, None).await.field(),
        "user_id"
    );
    // The service's clock reads 2026-03-10T12:00:00Z: a request time an hour ahead of it is
    // refused at the door (`a_request_time_within_the_clock_skew_is_accepted`: 3 minutes is).
    for slug in ["deactivate-user", "deactivate-salesperson"] {
        let ahead = r#"{"account_id": 1, "user_id": 4, "actor": "system",
                        "requested_at": "2026-03-10T13:00:00Z"}"#;
        let answer = post_job(port, slug, ahead, None).await;
        assert_eq!(
            (answer.status, answer.field().as_str()),
            (400, "requested_at"),
            "{answer:?}"
        );
    }
    let mistyped = r#"{"account_id": 1, "user_id": "four", "actor": "system"}"#;
    let answer = post_job(port, "deactivate-salesperson", mistyped, None).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    let bad_actor = r#"{"account_id": 1, "user_id": 4, "actor": "root"}"#;
    assert_eq!(
        post_job(port, "deactivate-user", bad_actor, None)
            .await
            .status,
        400
    );
    // (record-activity: a public kind; the no-op is internal, refused before its body.)
    let activity = r#"{"account_id": 1, "user_id": 4, "source": "api"}"#;
    assert_eq!(
        post_job(port, "record-activity", "[]", None).await.status,
        400
    );
    assert_eq!(
        post_job(port, "record-activity", "", None).await.status,
        400
    );
    let stranger = r#"{"account_id": 1, "mood": "grumpy", "user_id": 4, "source": "api"}"#;
    assert_eq!(
        post_job(port, "record-activity", stranger, None)
            .await
            .field(),
        "mood"
    );
    let long_key = "k".repeat(500);
    let answer = post_job(port, "record-activity", activity, Some(&long_key)).await;
    assert_eq!(answer.field(), "Idempotency-Key");

    // No token, a wrong one, another scheme: 401, and nothing about the token in the answer.
    let json = [("Content-Type", "application/json")];
    let none = request(
        port,
        "POST",
        "/v1/jobs/noop",
        &json,
        br#"{"account_id": 1}"#,
    )
    .await;
    assert_eq!(none.status, 401, "{none:?}");
    assert!(
        none.headers
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer")
    );
    for authorization in ["Bearer wrong-token", "Bearer ", "Basic dGVzdA==", TOKEN] {
        let headers = [
            ("Authorization", authorization),
            ("Content-Type", "application/json"),
        ];
        let answer = request(
            port,
            "POST",
            "/v1/jobs/noop",
            &headers,
            br#"{"account_id": 1}"#,
        )
        .await;
        assert_eq!(answer.status, 401, "{authorization}: {answer:?}");
        assert!(!answer.body.contains(TOKEN));
    }
    let unauthorized_get = request(
        port,
        "GET",
        &format!("/v1/jobs/{}", Uuid::new_v4()),
        &[],
        b"",
    )
    .await;
    assert_eq!(unauthorized_get.status, 401);

    // Too big: refused before it is decoded.
    let oversized = format!(
        r#"{{"account_id": 1, "pad": "{}"}}"#,
        "x".repeat(lifecycle_jobs::MAX_PAYLOAD_BYTES)
    );
    let answer = post_job(port, "record-activity", &oversized, None).await;
    assert_eq!(answer.status, 413, "{}", answer.headers);

    // Not JSON.
    let auth = bearer();
    let form = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let answer = request(
        port,
        "POST",
        "/v1/jobs/record-activity",
        &form,
        b"account_id=1",
    )
    .await;
    assert_eq!(answer.status, 415, "{answer:?}");

    // Showing jobs: unknown, not an id.
    assert_eq!(get_job(port, &Uuid::new_v4().to_string()).await.status, 404);
    assert_eq!(get_job(port, "not-a-uuid").await.field(), "id");

    // Only the first, good request made a job.
    assert_eq!(
        ledger::count_in_state(env.store(), "queued").await.unwrap(),
        1
    );
}

async fn the_openapi_document_lists_every_kind(backend: Backend) {
    let env = start(backend).await;
    let server = serve(&env).await;
    let port = server.port;
    let answer = request(port, "GET", "/v1/openapi.json", &[], b"").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let document = answer.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let schemas = &document["components"]["schemas"];
    for (name, slug) in lifecycle_jobs::KINDS {
        let operation = &document["paths"][format!("/v1/jobs/{slug}")]["post"];
        if !lifecycle_jobs::is_public(name) {
            assert!(
                operation.is_null(),
                "{name} is internal: not enqueued over HTTP"
            );
            continue;
        }
        assert!(operation.is_object(), "{name}: no POST /v1/jobs/{slug}");
        for status in ["202", "400", "401", "403", "409", "413", "415", "503"] {
            assert!(
                operation["responses"][status].is_object(),
                "{slug}: no {status} documented"
            );
        }
        let reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{slug}: no payload schema"));
        let schema_name = reference.rsplit('/').next().unwrap();
        assert!(
            schemas[schema_name]["properties"]["account_id"].is_object(),
            "{slug}: {schema_name} has no account_id"
        );
    }
    assert!(
        schemas["DeactivateUser"]["required"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("user_id"))
    );
    assert!(document["paths"]["/v1/jobs/{id}"]["get"].is_object());
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());

    // What the validators enforce, stated in the schemas: positive ids, the country,
    // language and email rules, the name limits.
    let create = &schemas["CreateUser"]["properties"];
    for id in ["account_id", "role_id", "team_id"] {
        assert_eq!(create[id]["minimum"], 1, "CreateUser.{id}");
    }
    assert_eq!(
        schemas["DeactivateUser"]["properties"]["user_id"]["minimum"],
        1
    );
    assert_eq!(
        schemas["DeactivateUser"]["properties"]["reassign_to"]["minimum"],
        1
    );
    let countries = create["country"]["enum"].as_array().unwrap();
    assert_eq!(countries.len(), 249);
    assert!(countries.contains(&serde_json::json!("ES")));
    assert!(!countries.contains(&serde_json::json!("UK")));
    assert_eq!(
        create["language"]["enum"],
        serde_json::json!(["en", "es", "fr", "pt"])
    );
    assert_eq!(create["email"]["format"], "email");
    assert_eq!(create["email"]["maxLength"], 254);
    assert_eq!(create["first_name"]["maxLength"], 100);
    assert!(create["first_name"]["pattern"].is_string());
    assert!(schemas["ConfirmUser"]["properties"]["token"]["pattern"].is_string());

    // Every status each route answers.
    let statuses = |path: &str, method: &str| -> Vec<String> {
        let responses = document["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} is not documented"));
        responses.keys().cloned().collect()
    };
    for (path, method, expected) in [
        (
            "/v1/jobs/{id}",
            "get",
            &["200", "400", "401", "404", "503"][..],
        ),
        (
            "/v1/tokens/check",
            "post",
            &["200", "400", "401", "403", "413", "415", "503"][..],
        ),
        (
            "/v1/jobs",
            "post",
            &["202", "400", "401", "413", "415", "503"][..],
        ),
    ] {
        let documented = statuses(path, method);
        for status in expected {
            assert!(
                documented.iter().any(|s| s == status),
                "{method} {path}: no {status} in {documented:?}"
            );
        }
    }
    let batch = &schemas["BatchRequest"]["properties"]["jobs"];
    assert_eq!(batch["maxItems"], lifecycle_jobs::MAX_BATCH_JOBS);
}

async fn check_token(port: u16, token: &str) -> serde_json::Value {
    let auth = bearer();
    let body = serde_json::json!({ "token": token }).to_string();
    let answer = request(
        port,
        "POST",
        "/v1/tokens/check",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()
}

/// One HTTP call deactivates a user; the user's session token, valid before, is rejected
/// by the token check right after.
async fn one_call_deactivates_and_the_next_request_is_rejected(backend: Backend) {
    use lifecycle::demo::crm_data::{self, NewUser};
    let mut env = start(backend).await;
    let server = serve(&env).await;
    let now = env.clock.now();
    let mut tx = env.tx().await;
    let account = common::utc_account(&mut tx, "Acme", now).await;
    let role = crm_data::role(&mut tx, account, "Admin", 100, true)
        .await
        .unwrap();
    let person = |email: &'static str| NewUser {
        account_id: account,
        role_id: role,
        first_name: "T",
        last_name: "U",
        email,
        country: "FR",
        status: "active",
    };
    let admin = crm_data::user(&mut tx, &person("admin@acme.test"), now)
        .await
        .unwrap();
    let ana = crm_data::user(&mut tx, &person("ana@acme.test"), now)
        .await
        .unwrap();
    crm_data::access_token(&mut tx, ana, "session", "ana-session-token", now)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let before = check_token(server.port, "ana-session-token").await;
    assert_eq!(before["valid"], true);
    assert_eq!(before["user_id"], ana);
    assert_eq!(
        check_token(server.port, "a-made-up-token").await["valid"],
        false
    );

    let payload = serde_json::json!({ "account_id": account, "user_id": ana, "actor": admin });
    let accepted = post_job(server.port, "deactivate-user", &payload.to_string(), None).await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let id: Uuid = accepted.json()["job_id"].as_str().unwrap().parse().unwrap();
    let record = env.wait_for(id).await;
    assert_eq!(record.state, "done", "{:?}", record.last_error);

    let after = check_token(server.port, "ana-session-token").await;
    assert_eq!(after["valid"], false);
    assert!(after.get("user_id").is_none());

    // The check itself needs the service token and a token to check.
    let anonymous = request(
        server.port,
        "POST",
        "/v1/tokens/check",
        &[("Content-Type", "application/json")],
        br#"{"token":"x"}"#,
    )
    .await;
    assert_eq!(anonymous.status, 401);
    let auth = bearer();
    let empty = request(
        server.port,
        "POST",
        "/v1/tokens/check",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    )
    .await;
    assert_eq!(empty.field(), "token");
    // The token as an array of the request's fields: serde would take it, the schema not.
    let array = request(
        server.port,
        "POST",
        "/v1/tokens/check",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        br#"["ana-session-token"]"#,
    )
    .await;
    assert_eq!(array.field(), "token", "{array:?}");
}

/// The typed client of the `lifecycle-jobs` crate against a running service.
async fn the_client_enqueues_against_a_running_service(backend: Backend) {
    use lifecycle_jobs::client::{Client, ClientError};
    use lifecycle_jobs::{ActivitySource, Actor, DeactivateUser, RecordActivity};
    let mut env = start(backend).await;
    let server = serve(&env).await;
    let client = Client::new(format!("http://127.0.0.1:{}/", server.port), TOKEN);
    let world = common::seed_world(&env, 1).await;
    let activity = RecordActivity {
        account_id: world.account,
        user_id: world.admin,
        source: ActivitySource::Api,
        at: None,
    };

    let first = client.enqueue(&activity, Some("client-1")).await.unwrap();
    assert!(first.created);
    let again = client.enqueue(&activity, Some("client-1")).await.unwrap();
    assert_eq!(again.job_id, first.job_id);
    assert!(!again.created);
    let record = env.wait_for(first.job_id).await;
    assert_eq!(record.state, "done");
    let status = client.job(first.job_id).await.unwrap();
    assert_eq!(
        (status.state.as_str(), status.kind.as_str()),
        ("done", "user::record_activity")
    );

    // Refused before it leaves: the field is named.
    let bad = DeactivateUser {
        account_id: 1,
        user_id: 0,
        actor: Actor::System,
        reassign_to: None,
        allow_reactivation_on_purchase: false,
        requested_at: None,
    };
    match client.enqueue(&bad, None).await {
        Err(ClientError::Invalid(invalid)) => assert_eq!(invalid.field, "user_id"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A job refused by a guard shows its reason through the client (account 1 is the
    // seeded world's now; 99 is none).
    let refused = client
        .enqueue(
            &DeactivateUser {
                account_id: 99,
                user_id: 2,
                actor: Actor::System,
                reassign_to: None,
                allow_reactivation_on_purchase: false,
                requested_at: None,
            },
            None,
        )
        .await
        .unwrap();
    env.wait_for(refused.job_id).await;
    let status = client.job(refused.job_id).await.unwrap();
    assert_eq!(status.state, "dead");
    assert!(
        status
            .last_error
            .unwrap()
            .contains("account 99 does not exist")
    );

    assert!(matches!(
        client.job(Uuid::now_v7()).await,
        Err(ClientError::NotFound)
    ));
    let stranger = Client::new(format!("http://127.0.0.1:{}", server.port), "wrong");
    assert!(matches!(
        stranger.enqueue(&activity, None).await,
        Err(ClientError::Unauthorized)
    ));
    assert!(
        !format!("{client:?}").contains(TOKEN),
        "the token never prints"
    );
}

/// A producer's clock a few minutes ahead of the service's is drift, not a mistake.
async fn a_request_time_within_the_clock_skew_is_accepted(backend: Backend) {
    let env = start(backend).await;
    let server = serve(&env).await;
    for slug in ["deactivate-user", "deactivate-salesperson"] {
        let skewed = r#"{"account_id": 1, "user_id": 4, "actor": "system",
                         "requested_at": "2026-03-10T12:03:00Z"}"#;
        let answer = post_job(server.port, slug, skewed, None).await;
        assert_eq!(answer.status, 202, "{answer:?}");
    }
}

on_both_backends!(
    a_request_time_within_the_clock_skew_is_accepted,
    the_client_enqueues_against_a_running_service,
    one_call_deactivates_and_the_next_request_is_rejected,
    an_accepted_job_is_recorded_once_and_runs,
    bad_input_is_refused_naming_the_field,
    the_openapi_document_lists_every_kind,
);

/// With no token configured (the default) the API is closed; health stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_the_api_refuses_everything() {
    let env = TestEnv::start(Backend::Sqlite).await;
    assert!(env.app.settings.http.api_tokens.is_empty());
    let server = serve(&env).await;
    let port = server.port;
    for token in ["", "anything"] {
        let auth = format!("Bearer {token}");
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        let answer = request(
            port,
            "POST",
            "/v1/jobs/noop",
            &headers,
            br#"{"account_id": 1}"#,
        )
        .await;
        assert_eq!(answer.status, 401, "{answer:?}");
    }
    assert_eq!(request(port, "GET", "/healthz", &[], b"").await.status, 200);
    assert_eq!(
        request(port, "GET", "/v1/openapi.json", &[], b"")
            .await
            .status,
        200
    );
}

/// `lifecycle run` reads the tokens from `LIFECYCLE__HTTP__API_TOKENS`, comma-separated, as
/// the README shows (a token that looks like a number included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_takes_its_tokens_from_the_environment() {
    let folder = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _child = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_lifecycle"))
            .arg("run")
            .current_dir(folder.path())
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("LIFECYCLE_ENV")
            .env("LIFECYCLE__HTTP__BIND", format!("127.0.0.1:{port}"))
            .env("LIFECYCLE__HTTP__API_TOKENS", "alpha-token, 12345")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("lifecycle run starts"),
    );
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no server");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let json = br#"{"account_id": 1, "user_id": 1, "source": "api"}"#;
        for (token, status) in [("alpha-token", 202), ("12345", 202), ("alpha", 401)] {
            let auth = format!("Bearer {token}");
            let headers = [
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ];
            let answer = request(port, "POST", "/v1/jobs/record-activity", &headers, json).await;
            assert_eq!(answer.status, status, "{token}: {answer:?}");
        }
    })
    .await
    .expect("the scenario finished in time");
}

/// The child process, killed however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
