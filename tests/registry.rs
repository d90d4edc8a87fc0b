//! The one list of job kinds (`lifecycle_jobs::for_each_job!`) reaches every place a kind
//! must be known: each kind of the list is handled by the worker, has its payload schema in
//! the OpenAPI document and is accepted by `lifecycle enqueue json <slug>`. A kind added to
//! the list without a minimal payload here fails too, so the checks cover it.

mod common;

use std::process::Command;

use lifecycle::handlers::{self, JobError, Runtime};
use lifecycle_jobs::KINDS;
use uuid::Uuid;

use common::{Backend, TestEnv};

/// The smallest valid payload of each kind, by slug.
const MINIMAL_PAYLOADS: &[(&str, &str)] = &[
    (
        "deactivate-salesperson",
        r#"{"account_id":1,"user_id":2,"actor":"system"}"#,
    ),
    (
        "deactivate-user",
        r#"{"account_id":1,"user_id":2,"actor":"system"}"#,
    ),
    (
        "reassign-records",
        r#"{"account_id":1,"from_user_id":2,"to_user_id":3,"actor":"system"}"#,
    ),
    ("release-license", r#"{"account_id":1,"license_id":2}"#),
    (
        "create-user",
        r#"{"account_id":1,"actor":"system","first_name":"Ana","last_name":"Ruiz",
            "email":"ana@acme.test","country":"ES","language":"es","role_id":2,"team_id":3}"#,
    ),
    (
        "confirm-user",
        r#"{"account_id":1,"user_id":2,"token":"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"}"#,
    ),
    (
        "activate-salesperson",
        r#"{"account_id":1,"user_id":2,"actor":"system","country":"ES"}"#,
    ),
    (
        "reactivate-user",
        r#"{"account_id":1,"user_id":2,"actor":"system"}"#,
    ),
    (
        "unlock-user",
        r#"{"account_id":1,"user_id":2,"actor":"system"}"#,
    ),
    (
        "record-login",
        r#"{"account_id":1,"user_id":2,"succeeded":true}"#,
    ),
    (
        "record-activity",
        r#"{"account_id":1,"user_id":2,"source":"api"}"#,
    ),
    (
        "purchase-made",
        r#"{"account_id":1,"email":"ana@acme.test"}"#,
    ),
    ("send-email", r#"{"account_id":1,"email_id":2}"#),
    ("noop", r#"{"account_id":1}"#),
    ("release-due-licenses", r#"{"at":"2026-03-10T03:00:00Z"}"#),
    ("prune-job-history", r#"{"at":"2026-03-10T03:00:00Z"}"#),
    ("lock-idle-users", r#"{}"#),
    ("expire-passwords", r#"{}"#),
];

/// Every kind of the list with its minimal payload: (name, slug, payload).
fn every_kind() -> Vec<(&'static str, &'static str, &'static str)> {
    KINDS
        .iter()
        .map(|(name, slug)| {
            let payload = MINIMAL_PAYLOADS
                .iter()
                .find(|(kind, _)| kind == slug)
                .unwrap_or_else(|| panic!("{slug}: add its minimal payload to MINIMAL_PAYLOADS"))
                .1;
            (*name, *slug, payload)
        })
        .collect()
}

/// The payload types' names, from the list itself: the names of their schemas.
macro_rules! type_names {
    ($($kind:ident),* $(,)?) => {
        [$((<lifecycle_jobs::$kind as lifecycle_jobs::Job>::NAME, stringify!($kind))),*]
    };
}

#[test]
fn every_kind_has_its_payload_schema_in_the_document() {
    let document = lifecycle::http::openapi::document();
    let schemas = &document.components.as_ref().unwrap().schemas;
    let types = lifecycle_jobs::for_each_job!(type_names);
    assert_eq!(types.len(), KINDS.len());
    for (name, type_name) in types {
        assert!(
            schemas.contains_key(type_name),
            "{name}: no {type_name} schema in the OpenAPI document"
        );
    }
}

#[test]
fn every_kind_is_accepted_by_enqueue_json() {
    let folder = tempfile::tempdir().unwrap();
    for (name, slug, payload) in every_kind() {
        let output = Command::new(env!("CARGO_BIN_EXE_lifecycle"))
            .current_dir(folder.path())
            .args(["enqueue", "json", slug, payload])
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("LIFECYCLE_ENV")
            .env("RUST_LOG", "warn")
            .output()
            .expect("the binary runs");
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Dispatching every kind with its minimal payload reaches its handler: whatever the
/// handler answers (nothing of account 1 exists), it is never "unknown job kind".
async fn every_kind_has_a_handler(backend: Backend) {
    let env = TestEnv::start(backend).await;
    for (name, _, payload) in every_kind() {
        let ctx = Runtime {
            store: &env.app.store,
            queue: &env.app.queue,
            clock: &env.app.clock,
            mailer: &env.app.mailer,
            settings: &env.app.settings,
            job_id: Uuid::now_v7(),
            enqueued_at: None,
        };
        let result = handlers::run(&ctx, name, payload).await;
        assert!(
            !matches!(result, Err(JobError::UnknownKind(_))),
            "{name} has no handler: {result:?}"
        );
        assert!(
            !matches!(result, Err(JobError::InvalidPayload(_))),
            "{name}: its minimal payload is refused: {result:?}"
        );
    }
}

on_both_backends!(every_kind_has_a_handler);
