//! Tenants and producers kept apart: idempotency keys scoped per account, the service's own
//! keys out of every producer's reach, a key reused for another job refused (409) naming
//! its job, and service tokens that can do only what their scope says. Over HTTP (the
//! service in process), through the library, the outbox and the Rust client. On both
//! backends.

mod common;

use common::http_client::{Answer, request, serve};
use common::{Backend, TestEnv, World};
use lifecycle::config::{Secret, ServiceToken};
use lifecycle::queue::{EnqueueRequest, QueueError};
use lifecycle::store::{Store, ledger, outbox};
use lifecycle_jobs::{Actor, CreateUser, DeactivateSalesperson, Job, ReleaseLicense, UserKind};
use uuid::Uuid;

/// The development token: every public kind, `system`, every account.
const DEV: &str = "dev-token-3e1a";
/// Scoped tokens, by name; see [`scoped`].
const AUTH: &str = "auth-token-77c2";
const BILLING: &str = "billing-token-0f9d";

/// The auth service of the README: sign-ins, activity and unlocks, never as `system`, for
/// `account` only; no token check. Billing: reactivations and purchases as `system`, every
/// account, and the token check.
fn scoped(account: i64) -> Vec<ServiceToken> {
    vec![
        ServiceToken {
            name: "auth-service".into(),
            sha256: lifecycle_jobs::sha256_hex(AUTH),
            kinds: vec![
                "record-login".into(),
                "record-activity".into(),
                "unlock-user".into(),
            ],
            system: false,
            accounts: Some(vec![account]),
            check_tokens: false,
            metrics: false,
        },
        ServiceToken {
            name: "billing".into(),
            sha256: lifecycle_jobs::sha256_hex(BILLING),
            kinds: vec!["purchase-made".into(), "user::reactivate".into()],
            system: true,
            accounts: None,
            check_tokens: true,
            metrics: false,
        },
    ]
}

/// A world (account A, the first: Ada the admin, an agent role, a team, one seat in
/// Spain) and a second account B with Eve; the dev token and the scoped tokens (auth:
/// account A only).
async fn start(backend: Backend) -> (TestEnv, World, i64, i64) {
    let env = TestEnv::start_with(backend, |settings| {
        settings.http.api_tokens = vec![Secret::new(DEV.to_string())];
        settings.http.tokens = scoped(1);
        settings.http.check_tokens().expect("the scopes are valid");
    })
    .await;
    let world = common::seed_world(&env, 1).await;
    assert_eq!(world.account, 1, "the scopes name the first account");
    let mut tx = env.tx().await;
    let eve = common::admin_of_another_account(&mut tx, env.clock.now()).await;
    tx.commit().await.unwrap();
    let other_account = scalar(&env, "SELECT account_id FROM users WHERE id = $1", eve).await;
    (env, world, other_account, eve)
}

async fn scalar(env: &TestEnv, sql: &'static str, id: i64) -> i64 {
    match env.store() {
        Store::Postgres(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
    }
    .expect("scalar query")
}

async fn text_of(env: &TestEnv, sql: &'static str, id: i64) -> Option<String> {
    match env.store() {
        Store::Postgres(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
    }
    .expect("text query")
}

/// The ids of the jobs of `kind`.
async fn jobs_of_kind(env: &TestEnv, kind: &str) -> Vec<Uuid> {
    let sql = "SELECT id FROM jobs WHERE kind = $1";
    match env.store() {
        Store::Postgres(pool) => sqlx::query_scalar(sql).bind(kind).fetch_all(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(sql).bind(kind).fetch_all(pool).await,
    }
    .expect("jobs of a kind")
}

async fn post(port: u16, token: &str, slug: &str, body: &str, key: Option<&str>) -> Answer {
    let auth = format!("Bearer {token}");
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
        body.as_bytes(),
    )
    .await
}

async fn get(port: u16, token: &str, id: &str) -> Answer {
    let auth = format!("Bearer {token}");
    request(
        port,
        "GET",
        &format!("/v1/jobs/{id}"),
        &[("Authorization", auth.as_str())],
        b"",
    )
    .await
}

fn login(account: i64, user: i64) -> String {
    serde_json::json!({ "account_id": account, "user_id": user, "succeeded": true }).to_string()
}

fn activity(account: i64, user: i64) -> String {
    serde_json::json!({ "account_id": account, "user_id": user, "source": "api" }).to_string()
}

fn job_id(answer: &Answer) -> Uuid {
    assert_eq!(answer.status, 202, "{answer:?}");
    answer.json()["job_id"].as_str().unwrap().parse().unwrap()
}

/// Account B sending account A's key gets a job of its own, and both run: B's sign-in is
/// recorded (it used to get A's job back, `created: false`, and never ran).
async fn two_accounts_with_one_key_each_get_their_own_job(backend: Backend) {
    let (mut env, world, other_account, eve) = start(backend).await;
    let server = serve(&env).await;
    let a = post(
        server.port,
        DEV,
        "record-login",
        &login(world.account, world.admin),
        Some("K-1"),
    )
    .await;
    let b = post(
        server.port,
        DEV,
        "record-login",
        &login(other_account, eve),
        Some("K-1"),
    )
    .await;
    let (a_id, b_id) = (job_id(&a), job_id(&b));
    assert_eq!(a.json()["created"], true);
    assert_eq!(b.json()["created"], true, "{b:?}");
    assert_ne!(a_id, b_id);
    for (id, user) in [(a_id, world.admin), (b_id, eve)] {
        let record = env.wait_for(id).await;
        assert_eq!(record.state, "done", "{:?}", record.last_error);
        assert_eq!(record.idempotency_key.as_deref(), Some("K-1"));
        let signed_in = "SELECT COUNT(*) FROM users WHERE id = $1 AND last_login_at IS NOT NULL";
        assert_eq!(
            scalar(&env, signed_in, user).await,
            1,
            "user {user}'s sign-in applied"
        );
    }
    // Each account's retry finds its own job.
    let b_again = post(
        server.port,
        DEV,
        "record-login",
        &login(other_account, eve),
        Some("K-1"),
    )
    .await;
    assert_eq!(job_id(&b_again), b_id);
    assert_eq!(b_again.json()["created"], false);
}

/// A producer's key equal to the key of the credentials email the service is about to
/// record does not swallow it: the email still goes out.
async fn a_caller_key_equal_to_a_mail_key_does_not_swallow_the_email(backend: Backend) {
    let (mut env, world, _, _) = start(backend).await;
    let server = serve(&env).await;
    let next_email = scalar(
        &env,
        "SELECT COALESCE(MAX(id), 0) + 1 + 0 * $1 FROM email_messages",
        0,
    )
    .await;
    let trap = format!("mail::send:{next_email}");
    let answer = post(
        server.port,
        DEV,
        "record-activity",
        &activity(world.account, world.admin),
        Some(&trap),
    )
    .await;
    job_id(&answer);

    let created = env
        .run(&CreateUser {
            account_id: world.account,
            actor: Actor::User(world.admin),
            first_name: "Nina".into(),
            last_name: "Nueva".into(),
            email: "nina@acme.test".into(),
            country: "ES".into(),
            language: "es".into(),
            role_id: world.agent_role,
            team_id: world.team,
            copy_permissions_from: None,
            simulator_only: false,
            kind: UserKind::Employee,
        })
        .await;
    assert_eq!(created.state, "done", "{:?}", created.last_error);
    let sends = jobs_of_kind(&env, "mail::send").await;
    assert_eq!(
        sends.len(),
        1,
        "the credentials email has its own SendEmail job"
    );
    let send = env.wait_for(sends[0]).await;
    assert_eq!(send.state, "done", "{:?}", send.last_error);
    assert_eq!(send.internal_key.as_deref(), Some(trap.as_str()));
    let mail = env.mail(1).await;
    assert_eq!(mail[0].rcpt_to, ["nina@acme.test"]);
}

/// A producer's key equal to the key of the seat release a deactivation schedules does not
/// swallow it: the license is still released at the end of the cycle (it stayed
/// `releasing`, billed, forever).
async fn a_caller_key_equal_to_a_release_key_does_not_keep_the_license(backend: Backend) {
    let (mut env, world, _, _) = start(backend).await;
    let server = serve(&env).await;
    let now = env.clock.now();
    let agent = common::seed_agent(&env, &world, "Sara", "es").await;
    let mut tx = env.tx().await;
    let license = lifecycle::demo::crm_data::license(&mut tx, world.account, agent, "ES", now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let release_at = lifecycle::domain::billing::current_cycle_end(now, chrono_tz::UTC, 1);
    let trap = format!(
        "{}:{license}:{}",
        ReleaseLicense::NAME,
        release_at.timestamp()
    );
    job_id(
        &post(
            server.port,
            DEV,
            "record-activity",
            &activity(world.account, world.admin),
            Some(&trap),
        )
        .await,
    );

    let deactivated = env
        .run(&DeactivateSalesperson {
            account_id: world.account,
            user_id: agent,
            actor: Actor::User(world.admin),
            reassign_contacts_to: None,
            requested_at: None,
        })
        .await;
    assert_eq!(deactivated.state, "done", "{:?}", deactivated.last_error);
    let releases = jobs_of_kind(&env, ReleaseLicense::NAME).await;
    assert_eq!(releases.len(), 1, "the release is scheduled");
    env.clock.set(release_at + chrono::Duration::seconds(1));
    let release = env.wait_for(releases[0]).await;
    assert_eq!(release.state, "done", "{:?}", release.last_error);
    let state = text_of(
        &env,
        "SELECT state FROM salesperson_licenses WHERE id = $1",
        license,
    )
    .await;
    assert_eq!(state.as_deref(), Some("released"));
}

/// The same key with another payload or kind: 409 naming the first job, nothing enqueued;
/// with the same payload: 202, `created: false`.
async fn a_key_reused_for_another_job_is_a_conflict(backend: Backend) {
    let (env, world, _, _) = start(backend).await;
    let server = serve(&env).await;
    let port = server.port;
    let first = post(
        port,
        DEV,
        "record-login",
        &login(world.account, world.admin),
        Some("crm-7"),
    )
    .await;
    let first_id = job_id(&first);

    let other_payload = serde_json::json!({
        "account_id": world.account, "user_id": world.admin, "succeeded": false
    })
    .to_string();
    let conflict = post(port, DEV, "record-login", &other_payload, Some("crm-7")).await;
    assert_eq!(conflict.status, 409, "{conflict:?}");
    assert_eq!(conflict.json()["job_id"], first_id.to_string());
    let error = conflict.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("crm-7") && error.contains(&first_id.to_string()),
        "{error}"
    );

    let other_kind = post(
        port,
        DEV,
        "record-activity",
        &activity(world.account, world.admin),
        Some("crm-7"),
    )
    .await;
    assert_eq!(other_kind.status, 409, "{other_kind:?}");
    assert_eq!(other_kind.json()["job_id"], first_id.to_string());

    // The same job again, even spelled differently (the payload is compared canonical).
    let respelled = format!(
        r#"{{ "succeeded": true, "user_id": {}, "account_id": {} }}"#,
        world.admin, world.account
    );
    let retry = post(port, DEV, "record-login", &respelled, Some("crm-7")).await;
    assert_eq!(job_id(&retry), first_id);
    assert_eq!(retry.json()["created"], false);
    assert_eq!(ledger::count_all(env.store()).await.unwrap(), 1);
}

/// Each refusal of a token's scope, with its status and field; and what it may do, it does.
async fn a_token_does_only_what_its_scope_says(backend: Backend) {
    let (env, world, other_account, eve) = start(backend).await;
    let server = serve(&env).await;
    let port = server.port;
    let own = activity(world.account, world.admin);

    assert_eq!(
        post(port, AUTH, "record-activity", &own, None).await.status,
        202
    );
    let refusals = [
        (
            AUTH,
            "deactivate-user",
            serde_json::json!({"account_id": world.account, "user_id": 9, "actor": world.admin})
                .to_string(),
            "kind",
        ),
        (
            AUTH,
            "unlock-user",
            serde_json::json!({"account_id": world.account, "user_id": 9, "actor": "system"})
                .to_string(),
            "actor",
        ),
        (
            AUTH,
            "record-activity",
            activity(other_account, eve),
            "account_id",
        ),
        (
            DEV,
            "send-email",
            serde_json::json!({"account_id": world.account, "email_id": 1}).to_string(),
            "kind",
        ),
        (
            BILLING,
            "release-license",
            serde_json::json!({"account_id": world.account, "license_id": 1}).to_string(),
            "kind",
        ),
        (
            DEV,
            "noop",
            serde_json::json!({"account_id": world.account}).to_string(),
            "kind",
        ),
        // The sweeps are fired by the scheduler or run by an operator, never sent.
        (
            DEV,
            "release-due-licenses",
            serde_json::json!({"at": "2026-03-10T03:00:00Z"}).to_string(),
            "kind",
        ),
        (
            DEV,
            "prune-job-history",
            serde_json::json!({"at": "2026-03-10T03:00:00Z"}).to_string(),
            "kind",
        ),
    ];
    for (token, slug, body, field) in refusals {
        let answer = post(port, token, slug, &body, None).await;
        assert_eq!(answer.status, 403, "{slug}: {answer:?}");
        assert_eq!(answer.json()["field"], field, "{slug}: {answer:?}");
        let error = answer.json()["error"].as_str().unwrap().to_string();
        if field == "kind" && matches!(slug, "send-email" | "release-license" | "noop") {
            let name = lifecycle_jobs::kind_name(slug).unwrap();
            assert!(
                error.contains(name) && error.contains("internal"),
                "{error}"
            );
        }
    }
    // Billing may act as system, for any account.
    let purchase = serde_json::json!({
        "account_id": other_account, "email": "eve@other.test"
    })
    .to_string();
    let answer = post(port, BILLING, "purchase-made", &purchase, None).await;
    assert_eq!(answer.status, 202, "{answer:?}");

    // The token check needs its own permission.
    let check = |token: &'static str| async move {
        let auth = format!("Bearer {token}");
        request(
            port,
            "POST",
            "/v1/tokens/check",
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            br#"{"token": "whatever"}"#,
        )
        .await
    };
    assert_eq!(check(AUTH).await.status, 403);
    assert_eq!(check(BILLING).await.status, 200);
    assert_eq!(check(DEV).await.status, 200);
    // Only the allowed jobs were recorded.
    assert_eq!(ledger::count_all(env.store()).await.unwrap(), 2);
}

/// A job outside a token's accounts or kinds answers exactly as one that does not exist.
async fn another_accounts_job_is_not_found(backend: Backend) {
    let (env, world, other_account, eve) = start(backend).await;
    let server = serve(&env).await;
    let port = server.port;
    let theirs = job_id(
        &post(
            port,
            DEV,
            "record-activity",
            &activity(other_account, eve),
            None,
        )
        .await,
    );
    let not_its_kind = job_id(
        &post(
            port,
            DEV,
            "purchase-made",
            &serde_json::json!({"account_id": world.account, "email": "x@acme.test"}).to_string(),
            None,
        )
        .await,
    );
    let own = job_id(
        &post(
            port,
            AUTH,
            "record-activity",
            &activity(world.account, world.admin),
            None,
        )
        .await,
    );

    let unknown = get(port, AUTH, &Uuid::now_v7().to_string()).await;
    assert_eq!(unknown.status, 404);
    for hidden in [theirs, not_its_kind] {
        let answer = get(port, AUTH, &hidden.to_string()).await;
        assert_eq!((answer.status, &answer.body), (404, &unknown.body));
    }
    assert_eq!(get(port, AUTH, &own.to_string()).await.status, 200);
    assert_eq!(get(port, DEV, &theirs.to_string()).await.status, 200);
}

/// The Rust client: a typed conflict naming the job, and a typed refusal of the scope.
async fn the_client_reports_conflicts_and_refusals(backend: Backend) {
    use lifecycle_jobs::client::{Client, ClientError};
    use lifecycle_jobs::{ActivitySource, RecordActivity, RecordLogin};
    let (env, world, other_account, eve) = start(backend).await;
    let server = serve(&env).await;
    let base = format!("http://127.0.0.1:{}", server.port);
    let auth = Client::new(&base, AUTH);
    let login = RecordLogin {
        account_id: world.account,
        user_id: world.admin,
        succeeded: true,
        at: None,
    };
    let first = auth.enqueue(&login, Some("client-9")).await.unwrap();
    let retry = auth.enqueue(&login, Some("client-9")).await.unwrap();
    assert_eq!((retry.job_id, retry.created), (first.job_id, false));
    let failed = RecordLogin {
        succeeded: false,
        ..login
    };
    match auth.enqueue(&failed, Some("client-9")).await {
        Err(ClientError::Conflict { job_id, .. }) => assert_eq!(job_id, first.job_id),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let elsewhere = RecordActivity {
        account_id: other_account,
        user_id: eve,
        source: ActivitySource::Api,
        at: None,
    };
    match auth.enqueue(&elsewhere, None).await {
        Err(ClientError::Forbidden { field, .. }) => {
            assert_eq!(field.as_deref(), Some("account_id"))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(env);
}

/// Through the library: a typed conflict from `Queue::enqueue` (the group enqueuer on
/// PostgreSQL, also when the two arrive together), a batch with a conflicting key records
/// none of its jobs, and an outbox row whose key holds another job is marked with why.
async fn the_library_and_the_outbox_report_conflicts(backend: Backend) {
    use lifecycle_jobs::RecordLogin;
    let (env, world, _, _) = start(backend).await;
    let queue = &env.app.queue;
    let job = |succeeded| RecordLogin {
        account_id: world.account,
        user_id: world.admin,
        succeeded,
        at: None,
    };
    let keyed =
        |succeeded, key: &str| EnqueueRequest::for_job(&job(succeeded), Some(key.into())).unwrap();
    let first = queue.enqueue(keyed(true, "lib-1")).await.unwrap();
    match queue.enqueue(keyed(false, "lib-1")).await {
        Err(QueueError::IdempotencyConflict { key, job_id }) => {
            assert_eq!((key.as_str(), job_id), ("lib-1", first.id))
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Together: one of the two is recorded, the other conflicts naming it.
    let (a, b) = tokio::join!(
        queue.enqueue(keyed(true, "lib-2")),
        queue.enqueue(keyed(false, "lib-2"))
    );
    let (won, lost) = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        other => panic!("one wins, one conflicts: {other:?}"),
    };
    assert!(matches!(lost, QueueError::IdempotencyConflict { job_id, .. } if job_id == won.id));

    let before = ledger::count_all(env.store()).await.unwrap();
    let batch = vec![keyed(true, "lib-3"), keyed(false, "lib-1")];
    assert!(matches!(
        queue.enqueue_batch(batch).await,
        Err(QueueError::IdempotencyConflict { job_id, .. }) if job_id == first.id
    ));
    assert_eq!(
        ledger::count_all(env.store()).await.unwrap(),
        before,
        "all or none"
    );

    let mut tx = env.tx().await;
    let conflicting = serde_json::to_string(&job(false)).unwrap();
    let row = outbox::insert(&mut tx, "record-login", &conflicting, Some("lib-1"))
        .await
        .unwrap();
    let same = serde_json::to_string(&job(true)).unwrap();
    let retry_row = outbox::insert(&mut tx, "record-login", &same, Some("lib-1"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    queue.relay_outbox().await.unwrap();
    let mut tx = env.tx().await;
    let refused = outbox::find(&mut tx, row).await.unwrap().unwrap();
    let retried = outbox::find(&mut tx, retry_row).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    assert!(refused.relayed && refused.job_id.is_none(), "{refused:?}");
    assert!(refused.error.unwrap().contains(&first.id.to_string()));
    assert_eq!(retried.job_id, Some(first.id));
}

on_both_backends!(
    two_accounts_with_one_key_each_get_their_own_job,
    a_caller_key_equal_to_a_mail_key_does_not_swallow_the_email,
    a_caller_key_equal_to_a_release_key_does_not_keep_the_license,
    a_key_reused_for_another_job_is_a_conflict,
    a_token_does_only_what_its_scope_says,
    another_accounts_job_is_not_found,
    the_client_reports_conflicts_and_refusals,
    the_library_and_the_outbox_report_conflicts,
);
