//! `POST /v1/jobs`: many jobs of any kinds in one request, each checked as the single route
//! checks it and answered on its own, in order; the valid ones recorded together. Over
//! HTTP (the service in process) and through the Rust client. On both backends.

mod common;

use common::http_client::{Answer, request, serve};
use common::{Backend, TestEnv, World};
use lifecycle::config::{Secret, ServiceToken};
use lifecycle::store::ledger;
use lifecycle_jobs::{ActivitySource, BatchItem, BatchJob, RecordActivity};
use serde_json::{Value, json};

/// The development token: every public kind, `system`, every account.
const DEV: &str = "dev-token-b41c";
/// A service token: sign-ins, activity and unlocks, never as `system`, one account.
const AUTH: &str = "auth-token-b41c";

/// The service, with the auth service's token scoped to the first account (the world's).
async fn start(backend: Backend) -> TestEnv {
    TestEnv::start_with(backend, |settings| {
        settings.http.api_tokens = vec![Secret::new(DEV.to_string())];
        settings.http.tokens = vec![ServiceToken {
            name: "auth-service".into(),
            sha256: lifecycle_jobs::sha256_hex(AUTH),
            kinds: vec![
                "record-login".into(),
                "record-activity".into(),
                "unlock-user".into(),
            ],
            system: false,
            accounts: Some(vec![1]),
            check_tokens: false,
            metrics: false,
        }];
    })
    .await
}

/// POST /v1/jobs with `token` and a raw body.
async fn post_raw(port: u16, token: &str, body: &[u8]) -> Answer {
    let auth = format!("Bearer {token}");
    request(
        port,
        "POST",
        "/v1/jobs",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await
}

/// POST /v1/jobs with `token` and `{"jobs": jobs}`: the per-item results of a 202.
async fn post_batch(port: u16, token: &str, jobs: Value) -> Vec<Value> {
    let answer = post_raw(port, token, json!({ "jobs": jobs }).to_string().as_bytes()).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    answer.json()["results"].as_array().unwrap().clone()
}

fn activity(world: &World, key: Option<&str>) -> Value {
    let mut job = json!({
        "kind": "record-activity",
        "payload": { "account_id": world.account, "user_id": world.admin, "source": "api" },
    });
    if let Some(key) = key {
        job["idempotency_key"] = key.into();
    }
    job
}

/// A refused item: its status and field.
fn refused(result: &Value) -> (u64, &str) {
    assert!(
        result["job_id"].is_null() || result["status"] == 409,
        "{result}"
    );
    assert!(
        result["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{result}"
    );
    (
        result["status"].as_u64().unwrap(),
        result["field"].as_str().unwrap_or(""),
    )
}

async fn queued(env: &TestEnv) -> i64 {
    ledger::count_in_state(env.store(), "queued").await.unwrap()
}

async fn valid_and_invalid_jobs_are_answered_in_order(backend: Backend) {
    let env = start(backend).await;
    let server = serve(&env).await;
    let world = common::seed_world(&env, 1).await;
    let jobs = json!([
        activity(&world, Some("batch-1")),
        { "kind": "deactivate-user",
          "payload": { "account_id": world.account, "user_id": 0, "actor": "system" } },
        { "kind": "no-such-kind", "payload": { "account_id": world.account } },
        { "kind": "user::deactivate",
          "payload": { "account_id": world.account, "user_id": world.admin + 100, "actor": world.admin },
          "idempotency_key": "batch-2" },
        { "kind": "noop", "payload": { "account_id": world.account } },
        { "kind": "record-activity",
          "payload": { "account_id": world.account, "user_id": world.admin, "source": "api", "usr": 1 } },
        { "kind": "record-activity",
          "payload": { "account_id": world.account, "user_id": world.admin, "source": "api" },
          "idempotency_key": "   " },
        activity(&world, None),
    ]);
    let results = post_batch(server.port, DEV, jobs.clone()).await;
    assert_eq!(results.len(), 8, "{results:?}");
    assert_eq!(results[0]["created"], true, "{results:?}");
    assert_eq!(refused(&results[1]), (400, "user_id"));
    assert_eq!(refused(&results[2]), (400, "kind"));
    assert_eq!(results[3]["created"], true, "{results:?}");
    assert_eq!(refused(&results[4]), (403, "kind"), "internal kind");
    assert_eq!(refused(&results[5]), (400, "usr"));
    assert_eq!(refused(&results[6]), (400, "idempotency_key"));
    assert_eq!(results[7]["created"], true, "{results:?}");
    assert_eq!(queued(&env).await, 3);
    let first = results[0]["job_id"].as_str().unwrap().to_string();
    let record = env.job(uuid::Uuid::parse_str(&first).unwrap()).await;
    assert_eq!(record.kind, "user::record_activity");
    assert_eq!(record.idempotency_key.as_deref(), Some("batch-1"));

    // The producer retries the whole batch: each keyed job is the same one, not created
    // again; the refusals are the same; the unkeyed job is a new one.
    let again = post_batch(server.port, DEV, jobs).await;
    assert_eq!(again[0]["job_id"], first.as_str());
    assert_eq!(again[0]["created"], false);
    assert_eq!(again[3]["job_id"], results[3]["job_id"]);
    assert_eq!(again[3]["created"], false);
    assert_eq!(refused(&again[1]), (400, "user_id"));
    assert_eq!(again[7]["created"], true);
    assert_ne!(again[7]["job_id"], results[7]["job_id"]);
    assert_eq!(queued(&env).await, 4);

    // A key reused for another job refuses that item only (409 naming the holder); the
    // job beside it is recorded.
    let mut other = activity(&world, Some("batch-1"));
    other["payload"]["source"] = "mobile".into();
    let results = post_batch(
        server.port,
        DEV,
        json!([other, activity(&world, Some("batch-3"))]),
    )
    .await;
    assert_eq!(refused(&results[0]), (409, ""));
    assert_eq!(results[0]["job_id"], first.as_str());
    assert_eq!(results[1]["created"], true, "{results:?}");
    assert_eq!(queued(&env).await, 5);
}

async fn the_document_is_refused_whole_when_malformed_or_too_long(backend: Backend) {
    let env = start(backend).await;
    let server = serve(&env).await;
    let world = common::seed_world(&env, 1).await;
    let many = |count: usize| {
        let jobs: Vec<Value> = (0..count)
            .map(|n| activity(&world, Some(&format!("many-{n}"))))
            .collect();
        json!({ "jobs": jobs }).to_string()
    };
    let answer = post_raw(server.port, DEV, many(1001).as_bytes()).await;
    assert_eq!(answer.field(), "jobs", "{answer:?}");
    assert_eq!(
        queued(&env).await,
        0,
        "nothing of a refused batch is recorded"
    );

    for malformed in [
        "{",
        "[]",
        r#"{"jobs": {}}"#,
        r#"{"jobs": [], "extra": 1}"#,
        r#"{"jobs": [{"kind": "record-activity"}]}"#,
        r#"{"jobs": [{"kind": "record-activity", "payload": 5}]}"#,
        r#"{"jobs": [{"kind": 7, "payload": {}}]}"#,
        // A struct as an array of its fields: serde would take it, the schema does not.
        "[[]]",
        r#"[[{"kind": "record-activity", "payload": {}}]]"#,
        r#"{"jobs": [["record-activity", {"account_id": 1}]]}"#,
    ] {
        let answer = post_raw(server.port, DEV, malformed.as_bytes()).await;
        assert_eq!(answer.status, 400, "{malformed}: {answer:?}");
        assert!(answer.json()["error"].is_string(), "{malformed}");
    }
    assert_eq!(queued(&env).await, 0);

    // 1,000 jobs, far over the 64 KiB of one payload: read, every one recorded.
    let body = many(1000);
    assert!(body.len() > lifecycle_jobs::MAX_PAYLOAD_BYTES);
    let answer = post_raw(server.port, DEV, body.as_bytes()).await;
    assert_eq!(
        answer.status,
        202,
        "{}",
        &answer.body[..200.min(answer.body.len())]
    );
    let results = answer.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|result| result["created"] == true));
    assert_eq!(queued(&env).await, 1000);

    // Past the batch limit: 413 in JSON.
    let mut huge = br#"{"jobs": []}"#.to_vec();
    huge.resize(lifecycle::http::api::MAX_BATCH_BODY_BYTES + 1, b' ');
    let answer = post_raw(server.port, DEV, &huge).await;
    assert_eq!(answer.status, 413, "{}", answer.headers);
    assert!(answer.json()["error"].is_string());

    // Not JSON, no token.
    let auth = format!("Bearer {DEV}");
    let answer = request(
        server.port,
        "POST",
        "/v1/jobs",
        &[("Authorization", auth.as_str())],
        b"{}",
    )
    .await;
    assert_eq!(answer.status, 415, "{answer:?}");
    let answer = post_raw(server.port, "wrong", br#"{"jobs": []}"#).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    let results = post_batch(server.port, DEV, json!([])).await;
    assert!(results.is_empty());
}

async fn the_token_scope_refuses_per_item(backend: Backend) {
    let env = start(backend).await;
    let server = serve(&env).await;
    let world = common::seed_world(&env, 1).await;
    assert_eq!(world.account, 1, "the scope names the first account");
    let results = post_batch(
        server.port,
        AUTH,
        json!([
            activity(&world, Some("scope-1")),
            { "kind": "record-activity",
              "payload": { "account_id": world.account + 1, "user_id": world.admin, "source": "api" } },
            { "kind": "deactivate-user",
              "payload": { "account_id": world.account, "user_id": world.admin, "actor": world.admin } },
            { "kind": "unlock-user",
              "payload": { "account_id": world.account, "user_id": world.admin, "actor": "system" } },
            { "kind": "send-email", "payload": { "account_id": world.account, "email_id": 1 } },
            { "kind": "unlock-user",
              "payload": { "account_id": world.account, "user_id": world.admin, "actor": world.admin } },
        ]),
    )
    .await;
    assert_eq!(results[0]["created"], true, "{results:?}");
    assert_eq!(refused(&results[1]), (403, "account_id"));
    assert_eq!(refused(&results[2]), (403, "kind"));
    assert_eq!(refused(&results[3]), (403, "actor"));
    assert_eq!(refused(&results[4]), (403, "kind"), "internal kind");
    assert_eq!(results[5]["created"], true, "{results:?}");
    assert_eq!(queued(&env).await, 2);
}

async fn the_client_enqueues_many(backend: Backend) {
    use lifecycle_jobs::client::{Client, ClientError};
    let env = start(backend).await;
    let server = serve(&env).await;
    let world = common::seed_world(&env, 1).await;
    let client = Client::new(format!("http://127.0.0.1:{}", server.port), DEV);
    let job = |user_id: i64| RecordActivity {
        account_id: world.account,
        user_id,
        source: ActivitySource::Mobile,
        at: None,
    };
    let jobs = vec![
        BatchJob::new(&job(world.admin), Some("client-many-1")).unwrap(),
        BatchJob::new(&job(-1), Some("client-many-2")).unwrap(),
        BatchJob::new(&job(world.admin), None).unwrap(),
    ];
    let first = client.enqueue_many(&jobs).await.unwrap();
    let BatchItem::Enqueued(enqueued) = &first[0] else {
        panic!("{first:?}");
    };
    assert!(enqueued.created);
    let BatchItem::Refused(refusal) = &first[1] else {
        panic!("{first:?}");
    };
    assert_eq!(
        (refusal.status, refusal.field.as_deref()),
        (400, Some("user_id"))
    );
    assert!(matches!(&first[2], BatchItem::Enqueued(e) if e.created));
    let again = client.enqueue_many(&jobs[..1]).await.unwrap();
    assert_eq!(
        again,
        vec![BatchItem::Enqueued(lifecycle_jobs::Enqueued {
            job_id: enqueued.job_id,
            created: false,
        })]
    );
    assert_eq!(queued(&env).await, 2);
    let too_many = vec![jobs[0].clone(); lifecycle_jobs::MAX_BATCH_JOBS + 1];
    match client.enqueue_many(&too_many).await {
        Err(ClientError::Invalid(invalid)) => assert_eq!(invalid.field, "jobs"),
        other => panic!("{other:?}"),
    }
    let stranger = Client::new(format!("http://127.0.0.1:{}", server.port), "wrong");
    assert!(matches!(
        stranger.enqueue_many(&jobs).await,
        Err(ClientError::Unauthorized)
    ));
}

on_both_backends!(
    valid_and_invalid_jobs_are_answered_in_order,
    the_document_is_refused_whole_when_malformed_or_too_long,
    the_token_scope_refuses_per_item,
    the_client_enqueues_many,
);
