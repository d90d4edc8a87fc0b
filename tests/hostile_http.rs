//! Hostile HTTP: the enqueue API fed generated requests, and its edges spelled out. The
//! payload generators are in `common/hostile.rs`, shared with `tests/hostile_payloads.rs`.
//!
//! Property (proptest, random seed per run; a failure prints the shrunk input):
//!
//! * `POST /v1/jobs/{slug}` (and `GET`, other methods) on a served router, on both backends,
//!   over generated slugs (real, names, fake, path traversal, percent-encoded, invalid
//!   UTF-8, very long), bodies (valid, borderline and arbitrary payloads, mutated JSON,
//!   invalid UTF-8, empty, at and beyond 64 KiB), Content-Type, Authorization and
//!   Idempotency-Key headers: never a 5xx, always an answer; every 4xx is JSON with a
//!   non-empty `error` (and `field` for a 400); the status is the one the request deserves,
//!   computed independently (202 exactly when the token, type, size and key are right and
//!   `validate_json` accepts the body; otherwise the refusal `validate_json` gives, with the
//!   same field; a 403 naming `kind` for an internal kind; a 409 for a key that an earlier
//!   accepted request of the account used with another kind or payload).
//!
//! Case count: [`HTTP_CASES_PER_BACKEND`] per backend. For 10x more:
//! `HOSTILE_INPUT_SCALE=10 cargo test --test hostile_http` (add `--release` to keep it
//! quick).

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use common::Backend;
use common::hostile::{
    Kind, TOKEN, body_text, json_ish_bytes, kinds, payload, runner, scaled, start, text,
};
use common::http_client::{Answer, request, serve};
use lifecycle::http::api::MAX_IDEMPOTENCY_KEY_BYTES;
use lifecycle_jobs::{KINDS, MAX_PAYLOAD_BYTES, validate_json};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::TestCaseError;

/// Generated requests per backend (two backends).
const HTTP_CASES_PER_BACKEND: u32 = 2_000;

/// One generated request.
#[derive(Clone)]
struct Hostile {
    method: &'static str,
    /// What follows `/v1/jobs/`, as sent (maybe with a query).
    target: String,
    content_type: Option<String>,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Vec<u8>,
}

impl std::fmt::Debug for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |text: &str| -> String {
            if text.len() > 300 {
                let cut = (0..=300).rev().find(|&i| text.is_char_boundary(i)).unwrap();
                format!("{:?}… ({} bytes)", &text[..cut], text.len())
            } else {
                format!("{text:?}")
            }
        };
        f.debug_struct("Hostile")
            .field("method", &self.method)
            .field("target", &format_args!("{}", shown(&self.target)))
            .field("content_type", &self.content_type)
            .field("authorization", &self.authorization.as_deref().map(shown))
            .field(
                "idempotency_key",
                &self.idempotency_key.as_deref().map(shown),
            )
            .field(
                "body",
                &format_args!("{}", shown(&String::from_utf8_lossy(&self.body))),
            )
            .finish()
    }
}

/// Characters a request target may hold as they are (RFC 3986 pchar and `/`, `?`).
const URI_SAFE: &str =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/%?";

fn percent_encode_all(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// As a URL path segment: unreserved characters as they are, the rest percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn target(kind: &Kind) -> BoxedStrategy<String> {
    let slug = kind.slug.to_string();
    let all: Vec<String> = KINDS.iter().map(|(_, slug)| slug.to_string()).collect();
    prop_oneof![
        30 => Just(slug.clone()),
        2 => Just(kind.name.to_string()),
        1 => Just(percent_encode_all(&slug)),
        1 => Just(format!("{slug}?x=1&y=%ff")),
        1 => Just(slug.to_uppercase()),
        1 => select(all),
        2 => select(vec![
            "",
            "delete-everything",
            "..",
            ".",
            "../../etc/passwd",
            "..%2F..%2Fetc%2Fpasswd",
            "%2e%2e%2f%2e%2e%2f",
            "noop/",
            "noop/extra",
            "/noop",
            "%ff%fe",
            "%c0%ae%c0%ae",
            "%zz",
            "%",
            "%0",
            "%00",
            "noop%00",
            "noop%20",
            "%20noop",
            "user%3A%3Adeactivate",
            "system::noop",
            "SYSTEM::NOOP",
            "noop;jsessionid=1",
            "noop?",
            "?noop",
            "00000000-0000-0000-0000-000000000000",
        ])
        .prop_map(String::from),
        2 => prop::collection::vec(select(URI_SAFE.chars().collect::<Vec<_>>()), 0..30)
            .prop_map(|chars| chars.into_iter().collect()),
        1 => text().prop_map(|text| percent_encode(&text)),
        1 => (select(vec!["a", "%41", "-", "/"]), select(vec![300usize, 2_000, 10_000]))
            .prop_map(|(unit, n)| unit.repeat(n)),
    ]
    .boxed()
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        24 => Just(Some("application/json".to_string())),
        3 => select(vec![
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/vnd.api+json",
            "application/problem+json; q=1",
            " application/json ",
            "application/json;",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
            "json",
            "application/jsonx",
            "+json",
            "application/json\tx",
            "application/jsón",
        ])
        .prop_map(|mime| Some(mime.to_string())),
        1 => "[ -~]{0,40}".prop_map(Some),
        2 => Just(None),
    ]
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        30 => Just(Some(format!("Bearer {TOKEN}"))),
        1 => select(vec![
            format!("bearer {TOKEN}"),
            format!("BEARER   {TOKEN}  "),
            format!("Bearer {TOKEN}x"),
            format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]),
            format!("Bearer\t{TOKEN}"),
            format!("Basic {TOKEN}"),
            TOKEN.to_string(),
            "Bearer ".to_string(),
            "Bearer".to_string(),
            String::new(),
            format!("Bearer {TOKEN} {TOKEN}"),
            format!("Bearer {}", TOKEN.to_uppercase()),
            format!("Bearer {TOKEN}é"),
            format!("Bearer {}", "t".repeat(5_000)),
        ])
        .prop_map(Some),
        1 => "[!-~][ -~]{0,60}".prop_map(Some),
        2 => Just(None),
    ]
}

fn idempotency_key() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        8 => Just(None),
        3 => "[!-~]{1,40}".prop_map(Some),
        1 => select(vec![
            String::new(),
            "   ".to_string(),
            "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES),
            "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1),
            "k".repeat(10_000),
            "a\tb".to_string(),
            "clé".to_string(),
            "\u{7f}".to_string(),
            "key\u{1}".to_string(),
            // Two bytes each: as long as a key may be, but not ASCII.
            "é".repeat(MAX_IDEMPOTENCY_KEY_BYTES / 2),
        ])
        .prop_map(Some),
    ]
}

/// The bytes of a body: text as generated, or broken UTF-8, empty, huge.
fn body(kind: &Kind) -> BoxedStrategy<Vec<u8>> {
    let kind = kind.clone();
    prop_oneof![
        8 => payload(&kind).prop_map(|doc| doc.render().into_bytes()),
        12 => body_text(&kind).prop_map(String::into_bytes),
        1 => (payload(&kind), any::<Index>(), select(vec![0xffu8, 0xc0, 0x80, 0xed]))
            .prop_map(|(doc, at, byte)| {
                let mut bytes = doc.render().into_bytes();
                let at = at.index(bytes.len() + 1);
                bytes.insert(at, byte);
                bytes
            }),
        1 => json_ish_bytes(),
        1 => Just(Vec::new()),
        1 => (payload(&kind), select(vec![
            MAX_PAYLOAD_BYTES,
            MAX_PAYLOAD_BYTES + 1,
            MAX_PAYLOAD_BYTES + 1_000,
            200_000,
        ]))
            .prop_map(|(doc, size)| {
                // Padded with spaces to `size` bytes: valid JSON at the limit, refused past it.
                let mut text = doc.render();
                if text.len() < size {
                    text.push_str(&" ".repeat(size - text.len()));
                }
                text.into_bytes()
            }),
    ]
    .boxed()
}

fn hostile_request(kinds: Arc<Vec<Kind>>) -> impl Strategy<Value = Hostile> {
    (0..kinds.len()).prop_flat_map(move |k| {
        let kind = &kinds[k];
        (
            prop_oneof![
                20 => Just("POST"),
                2 => Just("GET"),
                1 => select(vec!["PUT", "DELETE", "PATCH"]),
            ],
            target(kind),
            content_type(),
            authorization(),
            idempotency_key(),
            body(kind),
        )
            .prop_map(
                |(method, target, content_type, authorization, idempotency_key, body)| Hostile {
                    method,
                    target,
                    content_type,
                    authorization,
                    idempotency_key,
                    body,
                },
            )
    })
}

/// `%XX` decoded as axum decodes path parameters: a `%` not followed by two hex digits
/// stays as it is; `None` when the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The keys the API accepted so far: (account, key) -> (kind, canonical payload) of the job
/// holding it. The server's ledger holds the same, so the model knows when a key is reused
/// for another job (409).
type AcceptedKeys = RefCell<HashMap<(i64, String), (&'static str, String)>>;

/// The key as the API reads it, when the request has one.
fn key_of(request: &Hostile) -> Option<String> {
    Some(request.idempotency_key.as_deref()?.trim().to_string())
}

/// Records the key of a request the API accepted.
fn remember(request: &Hostile, answer: &Answer, keys: &AcceptedKeys) {
    let (Some(key), 202) = (key_of(request), answer.status) else {
        return;
    };
    let path = request.target.split('?').next().unwrap();
    let (Some(slug), Ok(json)) = (percent_decode(path), std::str::from_utf8(&request.body)) else {
        return;
    };
    if let Ok(job) = validate_json(&slug, json) {
        keys.borrow_mut()
            .entry((job.account_id, key))
            .or_insert((job.name, job.payload));
    }
}

/// What a request deserves: a status and, for a 400, the field named.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Accepted,
    Refused(u16, Option<String>),
    /// `GET` of a job id: 404 (no such job) or 200.
    Shown,
}

/// The longest request target the HTTP parser takes (`http::Uri`).
const MAX_URI_BYTES: usize = 65_534;

/// hyper's read buffer for a request head (`DEFAULT_MAX_BUFFER_SIZE` in hyper's h1 io): a
/// head still incomplete once this much is buffered is answered 431, whatever else is
/// wrong with it. One read may take it past the limit with the head complete, so a head
/// somewhat longer may still be parsed and refused for what it holds.
const HYPER_HEAD_BUFFER: usize = 8192 + 4096 * 100;

/// How far under [`HYPER_HEAD_BUFFER`] a head may be and still be refused as too large:
/// hyper checks the buffer between reads, so where it stops depends on how the bytes came.
const HEAD_BUFFER_SLACK: usize = 16 * 1024;

/// The request line and headers as `send` writes them, in bytes.
fn head_len(request: &Hostile) -> usize {
    let line =
        request.method.len() + " /v1/jobs/".len() + request.target.len() + " HTTP/1.1\r\n".len();
    let headers: usize = [
        ("Content-Type", &request.content_type),
        ("Authorization", &request.authorization),
        ("Idempotency-Key", &request.idempotency_key),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_ref().map(|value| name.len() + 4 + value.len()))
    .sum();
    line + headers
}

/// What the HTTP layer (hyper) refuses itself, with an empty body, before the application
/// sees the request: header values with control characters (400), targets longer than
/// [`MAX_URI_BYTES`] (414). Either may instead be a 431 when the head outgrows hyper's read
/// buffer (see `check`). Out of the application's reach (see the report).
fn refused_by_http_layer(request: &Hostile) -> Option<u16> {
    let control = [
        &request.content_type,
        &request.authorization,
        &request.idempotency_key,
    ]
    .into_iter()
    .flatten()
    .any(|value| value.chars().any(|c| c.is_control() && c != '\t'));
    if control {
        Some(400)
    } else if "/v1/jobs/".len() + request.target.len() > MAX_URI_BYTES {
        Some(414)
    } else {
        None
    }
}

/// The answer the API owes, computed from the request alone (and `validate_json`, and the
/// keys accepted before).
fn expected(request: &Hostile, keys: &AcceptedKeys) -> Expected {
    let refused =
        |status: u16, field: Option<&str>| Expected::Refused(status, field.map(String::from));
    let path = request.target.split('?').next().unwrap();
    // One non-empty segment after /v1/jobs/, else no route.
    if path.is_empty() || path.contains('/') {
        return refused(404, None);
    }
    if !matches!(request.method, "GET" | "POST") {
        return refused(405, None);
    }
    let authorized = request.authorization.as_deref().is_some_and(|value| {
        let value = value.trim_matches([' ', '\t']);
        value.is_ascii()
            && value.split_once(' ').is_some_and(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && token.trim() == TOKEN
            })
    });
    if !authorized {
        return refused(401, None);
    }
    let Some(slug) = percent_decode(path) else {
        return refused(
            400,
            Some(if request.method == "GET" {
                "id"
            } else {
                "kind"
            }),
        );
    };
    // A kind's path takes POST only, a job's path GET only (405 naming what it takes).
    let known = lifecycle_jobs::kind_name(&slug).is_some();
    if request.method == "GET" && known {
        return refused(405, None);
    }
    if request.method == "POST" && !known && uuid::Uuid::parse_str(&slug).is_ok() {
        return refused(405, None);
    }
    if request.method == "GET" {
        return match uuid::Uuid::parse_str(&slug) {
            Ok(_) => Expected::Shown,
            Err(_) => refused(400, Some("id")),
        };
    }
    // Internal kinds are refused to every token, before the body is looked at.
    if lifecycle_jobs::kind_name(&slug).is_some_and(|name| !lifecycle_jobs::is_public(name)) {
        return refused(403, Some("kind"));
    }
    let json_type = request.content_type.as_deref().is_some_and(|value| {
        let mime = value.split(';').next().unwrap().trim().to_ascii_lowercase();
        value.is_ascii() && (mime == "application/json" || mime.ends_with("+json"))
    });
    if !json_type {
        return refused(415, None);
    }
    if request.body.len() > MAX_PAYLOAD_BYTES {
        return refused(413, None);
    }
    if let Some(key) = &request.idempotency_key {
        let key = key.trim_matches([' ', '\t']);
        if !key.is_ascii() || key.trim().is_empty() || key.trim().len() > MAX_IDEMPOTENCY_KEY_BYTES
        {
            return refused(400, Some("Idempotency-Key"));
        }
    }
    let Ok(json) = std::str::from_utf8(&request.body) else {
        return refused(400, Some("payload"));
    };
    match validate_json(&slug, json) {
        Ok(job) => {
            let held =
                key_of(request).and_then(|key| keys.borrow().get(&(job.account_id, key)).cloned());
            match held {
                Some((name, payload)) if name != job.name || payload != job.payload => {
                    refused(409, None)
                }
                _ => Expected::Accepted,
            }
        }
        Err(refusal) => Expected::Refused(400, Some(refusal.field)),
    }
}

async fn send(port: u16, hostile: &Hostile) -> Answer {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(value) = &hostile.content_type {
        headers.push(("Content-Type", value));
    }
    if let Some(value) = &hostile.authorization {
        headers.push(("Authorization", value));
    }
    if let Some(value) = &hostile.idempotency_key {
        headers.push(("Idempotency-Key", value));
    }
    let path = format!("/v1/jobs/{}", hostile.target);
    request(port, hostile.method, &path, &headers, &hostile.body).await
}

/// Checks one answer against what the request deserves.
fn check(request: &Hostile, answer: &Answer, keys: &AcceptedKeys) -> Result<(), TestCaseError> {
    let status = answer.status;
    prop_assert!(status < 500, "a {} for {:?}", status, answer);
    if let Some(http_status) = refused_by_http_layer(request) {
        // A head past hyper's buffer is answered 431 whatever else is wrong with it.
        let head_too_large = status == 431
            && (http_status == 414 || head_len(request) + HEAD_BUFFER_SLACK > HYPER_HEAD_BUFFER);
        prop_assert!(status == http_status || head_too_large, "{:?}", answer);
        return Ok(());
    }
    let expected = expected(request, keys);
    if (400..500).contains(&status) {
        let body: serde_json::Value = serde_json::from_str(&answer.body).map_err(|error| {
            TestCaseError::fail(format!(
                "a {status} without a JSON body ({error}): {answer:?}"
            ))
        })?;
        let error = body["error"].as_str().unwrap_or("");
        prop_assert!(!error.trim().is_empty(), "no error: {:?}", answer);
        if status == 400 {
            let field = body["field"].as_str().unwrap_or("");
            prop_assert!(!field.trim().is_empty(), "no field: {:?}", answer);
        }
    }
    match expected {
        Expected::Accepted => {
            prop_assert_eq!(status, 202, "{:?}", answer);
            let body: serde_json::Value = serde_json::from_str(&answer.body)
                .map_err(|error| TestCaseError::fail(format!("{error}: {answer:?}")))?;
            prop_assert!(body["job_id"].is_string() && body["created"].is_boolean());
        }
        Expected::Shown => {
            prop_assert!(status == 404 || status == 200, "{:?}", answer);
        }
        Expected::Refused(expected_status, expected_field) => {
            prop_assert_eq!(status, expected_status, "{:?}", answer);
            if let Some(expected_field) = expected_field {
                let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
                prop_assert_eq!(body["field"].as_str(), Some(expected_field.as_str()));
            }
        }
    }
    Ok(())
}

async fn the_api_survives_hostile_requests(backend: Backend) {
    let env = start(backend).await;
    let server = serve(&env).await;
    let port = server.port;
    let kinds = kinds();
    let cases = scaled(HTTP_CASES_PER_BACKEND);
    let statuses: RefCell<BTreeMap<String, u32>> = RefCell::default();
    let keys = AcceptedKeys::default();
    let started = Instant::now();
    let handle = tokio::runtime::Handle::current();
    // proptest drives the cases from this thread; the server runs on the runtime's workers.
    let result = tokio::task::block_in_place(|| {
        runner(cases)
            .run(&hostile_request(kinds.clone()), |request| {
                let answer = handle.block_on(send(port, &request));
                let class = if refused_by_http_layer(&request).is_some() {
                    format!("{} (HTTP layer)", answer.status)
                } else {
                    answer.status.to_string()
                };
                *statuses.borrow_mut().entry(class).or_default() += 1;
                let checked = check(&request, &answer, &keys);
                remember(&request, &answer, &keys);
                checked
            })
            .map_err(|failure| failure.to_string())
    });
    if let Err(failure) = result {
        panic!("{backend:?}: {failure}");
    }
    let statuses = statuses.into_inner();
    eprintln!(
        "{backend:?}: {cases} requests in {:?}; statuses {statuses:?}",
        started.elapsed()
    );
    assert!(
        statuses.get("202").copied().unwrap_or(0) > 0,
        "nothing accepted"
    );
    assert!(
        statuses.get("400").copied().unwrap_or(0) > 0,
        "nothing refused"
    );
}

const ACTIVITY: &str = "/v1/jobs/record-activity";

/// The edges the property reaches only by chance, spelled out: every refusal in JSON,
/// the 405 still saying what is allowed, and what the HTTP layer refuses before the
/// application (an empty 400: the one refusal that is not JSON, out of the API's reach).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_at_the_edges() {
    let env = start(Backend::Sqlite).await;
    let server = serve(&env).await;
    let port = server.port;
    let auth = format!("Bearer {TOKEN}");
    let json_headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    // A public kind (the no-op is internal: refused over HTTP before its body is read).
    let noop = br#"{"account_id": 1, "user_id": 1, "source": "api"}"#;
    for (method, path, status) in [
        ("POST", "/v1/jobs/noop/extra", 404),
        ("POST", "/v1/jobs/", 404),
        ("POST", "/v1/jobs/../../etc/passwd", 404),
        ("GET", "/v1/nothing-here", 404),
        ("PUT", "/v1/jobs/noop", 405),
        (
            "DELETE",
            "/v1/jobs/00000000-0000-0000-0000-000000000000",
            405,
        ),
        ("GET", "/v1/tokens/check", 405),
        ("POST", "/v1/jobs/%ff", 400),
        ("POST", "/v1/jobs/..%2F..%2Fetc%2Fpasswd", 400),
    ] {
        let answer = request(port, method, path, &json_headers, noop).await;
        assert_eq!(answer.status, status, "{method} {path}: {answer:?}");
        let error = answer.json()["error"].as_str().unwrap_or("").to_string();
        assert!(!error.is_empty(), "{method} {path}: {answer:?}");
        if status == 405 {
            assert!(
                answer.headers.to_ascii_lowercase().contains("\r\nallow: "),
                "{method} {path}: {answer:?}"
            );
        }
        if status == 400 {
            assert_eq!(answer.field(), "kind", "{method} {path}");
        }
    }
    // Exactly at the size limit: read and accepted; one byte more: 413, in JSON.
    let mut body = noop.to_vec();
    body.resize(MAX_PAYLOAD_BYTES, b' ');
    let answer = request(port, "POST", ACTIVITY, &json_headers, &body).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    body.push(b' ');
    let answer = request(port, "POST", ACTIVITY, &json_headers, &body).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(answer.json()["error"].is_string());
    // A wrong-typed field is named (it was `payload`).
    let mistyped = br#"{"account_id": 1, "user_id": "four", "actor": "system"}"#;
    let answer = request(
        port,
        "POST",
        "/v1/jobs/deactivate-user",
        &json_headers,
        mistyped,
    )
    .await;
    assert_eq!(answer.field(), "user_id");
    // Control characters in a header: hyper refuses the request itself, empty-bodied.
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "key\u{1}"),
    ];
    let answer = request(port, "POST", ACTIVITY, &headers, noop).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (400, ""),
        "{answer:?}"
    );
    // Which of hyper's refusals wins: a control character in a header is refused (400)
    // unless the head is far past hyper's head buffer (431, the headers unread).
    for (target_bytes, status) in [(100_000, 400), (4 * HYPER_HEAD_BUFFER, 431)] {
        let path = format!("/v1/jobs/{}", "a".repeat(target_bytes));
        let answer = request(port, "POST", &path, &headers, noop).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (status, ""),
            "a {target_bytes}-byte target"
        );
    }
    // Not visible ASCII but valid HTTP: the application names the header.
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "clé"),
    ];
    let answer = request(port, "POST", ACTIVITY, &headers, noop).await;
    assert_eq!(answer.field(), "Idempotency-Key");
    assert_eq!(
        lifecycle::store::ledger::count_in_state(env.store(), "queued")
            .await
            .unwrap(),
        1,
        "only the request at the size limit made a job"
    );
}

on_both_backends!(the_api_survives_hostile_requests);
