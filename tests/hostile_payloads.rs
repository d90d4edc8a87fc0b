//! Hostile payloads: job payloads fed generated garbage through `validate_json`, and jobs
//! that name another tenant's user. The generators are in `common/hostile.rs`, shared with
//! `tests/hostile_http.rs`.
//!
//! Property (proptest, random seed per run; a failure prints the shrunk input):
//!
//! * `lifecycle_jobs::validate_json(slug, json)`, for every slug of `KINDS`, over generated
//!   payloads (the kind's real fields with valid, borderline and arbitrary values, unknown
//!   and duplicate keys), arbitrary JSON values, mutated JSON text and arbitrary bytes:
//!   it never panics; a refusal has a non-empty `field` and `reason`, the field being
//!   `payload`, a field of the kind or a key of the input, and never `payload` for a
//!   well-formed object within the size limit; an acceptance re-decodes to itself (the
//!   canonical form is stable). Every kind is accepted at least once.
//!
//! Case count: [`DECODE_CASES`]. For 10x more: `HOSTILE_INPUT_SCALE=10 cargo test --test
//! hostile_payloads` (add `--release` to keep it quick).

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use common::hostile::{Kind, TOKEN, body_text, kinds, runner, scaled, start, text, value};
use common::http_client::{request, serve};
use common::{Backend, TestEnv};
use lifecycle::store::users;
use lifecycle_jobs::{
    ActivateSalesperson, Actor, DeactivateUser, Job, MAX_PAYLOAD_BYTES, RecordLogin, UnlockUser,
    UnlockVia, validate_json,
};
use proptest::prelude::*;

/// Generated payloads checked with `validate_json`, all kinds together.
const DECODE_CASES: u32 = 10_000;

/// Every string literal in `text`, decoded: the keys a refusal may name even when they
/// were written with escapes.
fn string_literals(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut found = BTreeSet::new();
    for start in (0..bytes.len()).filter(|&i| bytes[i] == b'"') {
        let mut i = start + 1;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        if i < bytes.len()
            && let Ok(literal) = serde_json::from_str::<String>(&text[start..=i])
        {
            found.insert(literal);
        }
    }
    found
}

/// The refusal names something the producer can find: the document, a field of the kind,
/// or a key it sent.
fn names_something_sent(kind: &Kind, json: &str, field: &str) -> bool {
    field == "payload"
        || kind.fields.iter().any(|known| known == field)
        || json.contains(field)
        || string_literals(json).contains(field)
}

// ---------------------------------------------------------------------------------------
// Property 1: validate_json.

#[test]
fn validate_json_never_panics_and_names_every_refusal() {
    let kinds = kinds();
    let cases = scaled(DECODE_CASES);
    let strategy = {
        let kinds = kinds.clone();
        (0..kinds.len()).prop_flat_map(move |k| (Just(k), body_text(&kinds[k])))
    };
    let accepted: RefCell<BTreeMap<&str, u32>> = RefCell::default();
    let refused_fields: RefCell<BTreeMap<String, u32>> = RefCell::default();
    let started = Instant::now();
    let result = runner(cases).run(&strategy, |(k, json)| {
        let kind = &kinds[k];
        match validate_json(kind.slug, &json) {
            Ok(job) => {
                prop_assert_eq!(job.name, kind.name);
                // The sweeps alone may run over every account (no account_id: 0).
                prop_assert!(
                    job.account_id > 0 || job.name.starts_with("sweep::"),
                    "{:?}",
                    job
                );
                let again = validate_json(kind.slug, &job.payload);
                prop_assert_eq!(again.as_ref(), Ok(&job), "not stable: {}", job.payload);
                // The name is as good as the slug.
                let by_name = validate_json(kind.name, &json);
                prop_assert_eq!(by_name.as_ref(), Ok(&job));
                *accepted.borrow_mut().entry(kind.slug).or_default() += 1;
            }
            Err(refusal) => {
                prop_assert!(!refusal.field.trim().is_empty(), "{:?}", refusal);
                prop_assert!(!refusal.reason.trim().is_empty(), "{:?}", refusal);
                prop_assert!(
                    names_something_sent(kind, &json, &refusal.field),
                    "{}: {:?} names neither the payload, a field nor a key sent",
                    kind.slug,
                    refusal
                );
                // A well-formed object within the size limit is never refused as a whole:
                // the refusal names the field at fault (a blank key cannot be named).
                if json.len() <= MAX_PAYLOAD_BYTES
                    && let Ok(object) =
                        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&json)
                    && !object.keys().any(|key| key.trim().is_empty())
                {
                    prop_assert_ne!(&refusal.field, "payload", "{:?}", refusal);
                }
                let known = kind.fields.contains(&refusal.field) || refusal.field == "payload";
                // A key the kind does not have is refused as unknown, not for its value.
                prop_assert!(
                    known || refusal.reason.starts_with("unknown field `"),
                    "{:?}",
                    refusal
                );
                // A field said to be missing is missing.
                if refusal.reason.starts_with("missing field `")
                    && let Ok(object) =
                        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&json)
                {
                    prop_assert!(!object.contains_key(&refusal.field), "{:?}", refusal);
                }
                let top = if known {
                    refusal.field.clone()
                } else {
                    "(unknown key)".into()
                };
                *refused_fields.borrow_mut().entry(top).or_default() += 1;
            }
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let accepted = accepted.into_inner();
    eprintln!(
        "validate_json: {cases} cases in {:?}; accepted per kind {accepted:?}; refusals by field {:?}",
        started.elapsed(),
        refused_fields.into_inner()
    );
    for kind in kinds.iter() {
        assert!(
            accepted.get(kind.slug).copied().unwrap_or(0) > 0,
            "{}: no generated payload was accepted, the round trip went untested",
            kind.slug
        );
    }
}

/// Slugs that are not kinds, whatever the payload: refused naming `kind`.
#[test]
fn unknown_kinds_are_refused_naming_kind() {
    let result = runner(scaled(500)).run(&(text(), value()), |(slug, doc)| {
        prop_assume!(lifecycle_jobs::kind_name(&slug).is_none());
        let refusal = validate_json(&slug, &doc.render()).unwrap_err();
        prop_assert_eq!(&refusal.field, "kind");
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
// ---------------------------------------------------------------------------------------
// Cross-tenant: a job naming another account's user.

/// The API cannot know whose user an id is: it accepts the job; the worker refuses it,
/// after one attempt, as naming a user that does not exist in the account, and the other
/// account's user is untouched.
async fn another_tenants_user_does_not_exist_here(backend: Backend) {
    let mut env = start(backend).await;
    let server = serve(&env).await;
    let world = common::seed_world(&env, 2).await;
    let now = env.clock.now();
    let mut tx = env.tx().await;
    let eve = common::admin_of_another_account(&mut tx, now).await;
    tx.commit().await.unwrap();
    let before = snapshot(&env, eve).await;

    let admin = Actor::User(world.admin);
    let jobs: Vec<(&str, String)> = vec![
        (
            DeactivateUser::SLUG,
            json(&DeactivateUser {
                account_id: world.account,
                user_id: eve,
                actor: admin,
                reassign_to: None,
                allow_reactivation_on_purchase: false,
                requested_at: None,
            }),
        ),
        (
            ActivateSalesperson::SLUG,
            json(&ActivateSalesperson {
                account_id: world.account,
                user_id: eve,
                actor: admin,
                country: "ES".into(),
            }),
        ),
        (
            UnlockUser::SLUG,
            json(&UnlockUser {
                account_id: world.account,
                user_id: eve,
                actor: admin,
                via: UnlockVia::Admin,
            }),
        ),
        (
            RecordLogin::SLUG,
            json(&RecordLogin {
                account_id: world.account,
                user_id: eve,
                succeeded: false,
                at: None,
            }),
        ),
    ];
    let auth = format!("Bearer {TOKEN}");
    for (slug, payload) in jobs {
        let answer = request(
            server.port,
            "POST",
            &format!("/v1/jobs/{slug}"),
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            payload.as_bytes(),
        )
        .await;
        assert_eq!(answer.status, 202, "{slug}: {answer:?}");
        let id: uuid::Uuid = answer.json()["job_id"].as_str().unwrap().parse().unwrap();
        let record = env.wait_for(id).await;
        assert_eq!(record.state, "dead", "{slug}: {record:?}");
        assert_eq!(record.attempts, 1, "{slug}: not retried");
        let error = record.last_error.unwrap_or_default();
        assert!(
            error.contains(&format!(
                "user {eve} does not exist in account {}",
                world.account
            )),
            "{slug}: {error}"
        );
    }
    // The same jobs run directly (not through HTTP), as a producer on the queue would.
    let direct = env
        .run(&RecordLogin {
            account_id: world.account,
            user_id: eve,
            succeeded: true,
            at: None,
        })
        .await;
    assert_eq!(direct.state, "dead");
    assert!(
        direct
            .last_error
            .unwrap_or_default()
            .contains("does not exist in account")
    );
    let direct = env
        .run(&UnlockUser {
            account_id: world.account,
            user_id: eve,
            actor: Actor::System,
            via: UnlockVia::PasswordReset,
        })
        .await;
    assert_eq!(direct.state, "dead");
    assert!(
        direct
            .last_error
            .unwrap_or_default()
            .contains("does not exist in account")
    );
    assert_eq!(snapshot(&env, eve).await, before, "Eve's user is untouched");
}

fn json<J: Job>(job: &J) -> String {
    serde_json::to_string(job).unwrap()
}

/// What a lifecycle job could change about a user.
async fn snapshot(env: &TestEnv, user: i64) -> String {
    let mut tx = env.tx().await;
    let row = users::find(&mut tx, user).await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    format!(
        "{} {} {:?} {} {:?} {:?}",
        row.account_id,
        row.status,
        row.lock_reason,
        row.failed_logins,
        row.last_login_at,
        row.last_activity_at
    )
}

on_both_backends!(another_tenants_user_does_not_exist_here);
