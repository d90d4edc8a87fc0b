//! Hostile input: payload decoding and the HTTP enqueue API fed generated garbage, and jobs
//! that name another tenant's user.
//!
//! Properties (proptest, random seed per run; a failure prints the shrunk input):
//!
//! * `lifecycle_jobs::validate_json(slug, json)`, for every slug of `KINDS`, over generated
//!   payloads (the kind's real fields with valid, borderline and arbitrary values, unknown
//!   and duplicate keys), arbitrary JSON values, mutated JSON text and arbitrary bytes:
//!   it never panics; a refusal has a non-empty `field` and `reason`, the field being
//!   `payload`, a field of the kind or a key of the input, and never `payload` for a
//!   well-formed object within the size limit; an acceptance re-decodes to itself (the
//!   canonical form is stable). Every kind is accepted at least once.
//! * `POST /v1/jobs/{slug}` (and `GET`, other methods) on a served router, on both backends,
//!   over generated slugs (real, names, fake, path traversal, percent-encoded, invalid
//!   UTF-8, very long), bodies (as above, invalid UTF-8, empty, at and beyond 64 KiB),
//!   Content-Type, Authorization and Idempotency-Key headers: never a 5xx, always an
//!   answer; every 4xx is JSON with a non-empty `error` (and `field` for a 400); the status
//!   is the one the request deserves, computed independently (202 exactly when the token,
//!   type, size and key are right and `validate_json` accepts the body; otherwise the
//!   refusal `validate_json` gives, with the same field; a 403 naming `kind` for an
//!   internal kind; a 409 for a key that an earlier accepted request of the account used
//!   with another kind or payload).
//!
//! Case counts: [`DECODE_CASES`] in all and [`HTTP_CASES_PER_BACKEND`] per backend. For 10x
//! more: `HOSTILE_INPUT_SCALE=10 cargo test --test hostile_input` (add `--release` to keep
//! it quick).

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use common::http_client::{Answer, request, serve};
use common::{Backend, TestEnv};
use lifecycle::store::users;
use lifecycle_jobs::{
    ActivateSalesperson, Actor, DeactivateUser, Job, KINDS, MAX_PAYLOAD_BYTES, RecordLogin,
    UnlockUser, UnlockVia, validate_json,
};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Generated payloads checked with `validate_json`, all kinds together.
const DECODE_CASES: u32 = 10_000;
/// Generated requests per backend (two backends).
const HTTP_CASES_PER_BACKEND: u32 = 2_000;

/// `HOSTILE_INPUT_SCALE=10` multiplies every case count.
fn scaled(cases: u32) -> u32 {
    let scale = std::env::var("HOSTILE_INPUT_SCALE")
        .ok()
        .and_then(|scale| scale.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    cases.saturating_mul(scale)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        // No regression files written next to the tests; the failure is printed.
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    })
}

// ---------------------------------------------------------------------------------------
// The kinds and their fields, read from the OpenAPI document (so a new field or kind is
// generated without touching this file).

#[derive(Clone, Debug)]
struct Kind {
    name: &'static str,
    slug: &'static str,
    fields: Vec<String>,
    required: Vec<String>,
}

fn kinds() -> Arc<Vec<Kind>> {
    let document = serde_json::to_value(lifecycle::http::openapi::document()).unwrap();
    let kinds = KINDS
        .iter()
        .map(|(name, slug)| {
            let operation = &document["paths"][format!("/v1/jobs/{slug}")]["post"];
            // An internal kind has no path (it is not enqueued over HTTP); its payload
            // schema is among the components, under its type's name.
            let type_name: String = slug
                .split('-')
                .map(|word| word[..1].to_uppercase() + &word[1..])
                .collect();
            let reference = if lifecycle_jobs::is_public(name) {
                operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{slug}: no payload schema"))
            } else {
                &type_name
            };
            let schema = &document["components"]["schemas"][reference.rsplit('/').next().unwrap()];
            let names = |key: &str| -> Vec<String> {
                match &schema[key] {
                    serde_json::Value::Object(map) => map.keys().cloned().collect(),
                    serde_json::Value::Array(items) => items
                        .iter()
                        .map(|item| item.as_str().unwrap().to_string())
                        .collect(),
                    _ => Vec::new(),
                }
            };
            let fields = names("properties");
            assert!(fields.contains(&"account_id".to_string()), "{slug}");
            Kind {
                name,
                slug,
                fields,
                required: names("required"),
            }
        })
        .collect();
    Arc::new(kinds)
}

// ---------------------------------------------------------------------------------------
// JSON documents, rendered by hand so that they can hold what serde_json::Value cannot:
// duplicate keys, numbers out of every range, invalid escapes, NaN.

#[derive(Clone, Debug)]
enum Doc {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Literal JSON text, as is: `1e400`, `"\ud800"`, `"\x"`.
    Raw(&'static str),
    /// `[[[…]]]` or `{"a":{"a":…}}`, `depth` levels.
    Deep {
        depth: usize,
        objects: bool,
    },
    Arr(Vec<Doc>),
    Obj(Vec<(String, Doc)>),
}

impl Doc {
    fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        match self {
            Doc::Null => out.push_str("null"),
            Doc::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
            Doc::Int(value) => out.push_str(&value.to_string()),
            // `{:?}` writes NaN and inf as they are: invalid JSON, on purpose.
            Doc::Float(value) => out.push_str(&format!("{value:?}")),
            Doc::Str(text) => out.push_str(&serde_json::to_string(text).unwrap()),
            Doc::Raw(text) => out.push_str(text),
            Doc::Deep { depth, objects } => {
                if *objects {
                    out.push_str(&r#"{"a":"#.repeat(*depth));
                    out.push('1');
                    out.push_str(&"}".repeat(*depth));
                } else {
                    out.push_str(&"[".repeat(*depth));
                    out.push_str(&"]".repeat(*depth));
                }
            }
            Doc::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.render_into(out);
                }
                out.push(']');
            }
            Doc::Obj(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(key).unwrap());
                    out.push(':');
                    value.render_into(out);
                }
                out.push('}');
            }
        }
    }
}

/// Number literals no i64 holds, and other numbers of unusual spelling.
const RAW_NUMBERS: &[&str] = &[
    "1e40",
    "1e400",
    "-1e400",
    "1E+2",
    "4.0",
    "-0",
    "0.5",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "123456789012345678901234567890",
    "00",
    "01",
    "+1",
    ".5",
    "1.",
    "0x10",
    "NaN",
    "Infinity",
];

/// String literals as written: lone surrogates, invalid escapes, raw control characters.
const RAW_STRINGS: &[&str] = &[
    r#""\ud800""#,
    r#""\udc00\ud800""#,
    r#""\u0000""#,
    r#""\u00""#,
    r#""\x41""#,
    r#""\'""#,
    "\"tab\there\"",
    "\"new\nline\"",
    "\"\u{0}\"",
    r#""unterminated"#,
    "'single'",
    r#""\uD83D\uDE00""#,
];

fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => proptest::char::range('a', 'z'),
        1 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => select(vec![
            '\u{7f}', '"', '\\', '/', '\u{2028}', '\u{feff}', '\u{10ffff}', '\u{fffd}', 'é', '😀',
            ' ', '.', '@', ':', '%',
        ]),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(tricky_char(), 0..40).prop_map(|chars| chars.into_iter().collect()),
        2 => any::<String>(),
        2 => select(vec![
            "", " ", "system", "SYSTEM", "user:3", "user:-3", "user:", "0", "-1", "ES", "es",
            "en", "admin", "password_reset", "api", "employee", "a@b.io", "null", "true",
            "2026-03-10T12:00:00Z", "sha256:", "{}", "[]", "\u{0}",
        ])
        .prop_map(String::from),
        1 => (
            select(vec!['x', ' ', 'é', '\u{0}', '😀', '"']),
            select(vec![64usize, 100, 101, 200, 201, 255, 257, 5_000, 70_000]),
        )
            .prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

fn leaf() -> impl Strategy<Value = Doc> {
    prop_oneof![
        1 => Just(Doc::Null),
        1 => any::<bool>().prop_map(Doc::Bool),
        3 => prop_oneof![
            -3i64..1_000,
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX),
        ]
        .prop_map(Doc::Int),
        1 => prop_oneof![any::<f64>(), Just(1e40), Just(-0.0), Just(4.0), Just(f64::NAN)]
            .prop_map(Doc::Float),
        1 => select(RAW_NUMBERS).prop_map(Doc::Raw),
        4 => text().prop_map(Doc::Str),
        1 => select(RAW_STRINGS).prop_map(Doc::Raw),
    ]
}

/// Any JSON value (and some that are almost JSON).
fn value() -> BoxedStrategy<Doc> {
    let nested = leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Doc::Arr),
            prop::collection::vec((key(Vec::new()), inner), 0..6).prop_map(Doc::Obj),
        ]
    });
    prop_oneof![
        12 => nested,
        1 => (
            select(vec![2usize, 127, 128, 129, 1_000, 10_000]),
            any::<bool>(),
        )
            .prop_map(|(depth, objects)| Doc::Deep { depth, objects }),
    ]
    .boxed()
}

/// An object key: a real field of the kind, a near miss, or anything.
fn key(fields: Vec<String>) -> BoxedStrategy<String> {
    let near_misses: Vec<String> = fields
        .iter()
        .flat_map(|field| {
            [
                field.to_uppercase(),
                format!("{field} "),
                format!("{field}\u{0}"),
                field.replace('_', ""),
            ]
        })
        .chain([
            "".to_string(),
            "a".to_string(),
            "$ref".to_string(),
            "__proto__".to_string(),
        ])
        .collect();
    if fields.is_empty() {
        return prop_oneof![text(), select(near_misses)].boxed();
    }
    prop_oneof![
        3 => select(fields),
        1 => select(near_misses),
        2 => text(),
    ]
    .boxed()
}

/// A value that passes the field's rules (for the fields this crate has; a field added
/// later gets small positive numbers, or whatever `value()` makes).
fn valid(field: &str) -> BoxedStrategy<Doc> {
    let word = |words: &[&'static str]| select(words.to_vec()).prop_map(|w| Doc::Str(w.into()));
    let alphabet: Vec<char> = ('a'..='z')
        .chain('A'..='Z')
        .chain('0'..='9')
        .chain(['-', '_'])
        .collect();
    match field {
        "actor" => prop_oneof![
            word(&["system", "SYSTEM", "user:7"]),
            (1i64..1_000).prop_map(Doc::Int),
        ]
        .boxed(),
        "country" | "license_country" => word(&["ES", "FR", "PT", "BR", "US", "MX"]).boxed(),
        "language" => word(&["en", "es", "fr", "pt"]).boxed(),
        "email" => prop_oneof![
            word(&[
                "ana@example.com",
                "Ana.Lopez+crm@mail.example.co.uk",
                "joão@exemplo.com.br",
            ]),
            ("[a-z]{1,12}", "[a-z]{1,12}")
                .prop_map(|(local, domain)| Doc::Str(format!("{local}@{domain}.com"))),
        ]
        .boxed(),
        "first_name" | "last_name" => {
            word(&["Ana", "María José", "<b>O'Brien</b>", "名前", "Zoë"]).boxed()
        }
        "token" => prop_oneof![
            prop::collection::vec(select(alphabet), 16..=64)
                .prop_map(|chars| Doc::Str(chars.into_iter().collect())),
            "[0-9a-f]{64}".prop_map(|digest| Doc::Str(format!("sha256:{digest}"))),
        ]
        .boxed(),
        "at" => word(&[
            "2026-03-10T12:00:00Z",
            "2026-03-10T12:00:00.123456789+05:30",
            "2026-03-10T12:00:00-00:00",
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2016-12-31T23:59:60Z",
            "2026-03-10t12:00:00z",
        ])
        .boxed(),
        "source" => word(&["ui_login", "api", "mobile", "integration_sync"]).boxed(),
        "via" => word(&["admin", "password_reset"]).boxed(),
        "kind" => word(&["employee", "customer"]).boxed(),
        "succeeded" | "simulator_only" | "allow_reactivation_on_purchase" => {
            any::<bool>().prop_map(Doc::Bool).boxed()
        }
        "purchase_reference" => "[ -~]{0,40}".prop_map(Doc::Str).boxed(),
        _ => prop_oneof![
            9 => (1i64..10_000).prop_map(Doc::Int),
            1 => Just(Doc::Int(i64::MAX)),
        ]
        .boxed(),
    }
}

/// A value on the wrong side of the field's rules, by a little.
fn borderline(field: &str) -> BoxedStrategy<Doc> {
    let word = |words: &[&'static str]| select(words.to_vec()).prop_map(|w| Doc::Str(w.into()));
    match field {
        "actor" => prop_oneof![
            word(&["root", "user:0", "", "user:-1", "system "]),
            Just(Doc::Int(0)),
            Just(Doc::Int(-1)),
            Just(Doc::Raw("9223372036854775808")),
        ]
        .boxed(),
        "country" | "license_country" => word(&["es", "UK", "ESP", "", "E", "É"]).boxed(),
        "language" => word(&["EN", "de", "pt-BR", ""]).boxed(),
        "email" => word(&[
            "",
            "ana",
            "ana@example",
            "Ana <ana@example.com>",
            "ana@example.com\r\nBcc: x@y.z",
            "an..a@example.com",
        ])
        .boxed(),
        "first_name" | "last_name" => prop_oneof![
            word(&["", "   ", "Ana\nBcc", "\u{0}"]),
            Just(Doc::Str("x".repeat(101))),
        ]
        .boxed(),
        "token" => word(&["short", "has space in it 1234", "sha256:abc", ""]).boxed(),
        "at" => word(&[
            "yesterday",
            "2026-02-30T00:00:00Z",
            "2026-03-10",
            "",
            "+275760-09-13T00:00:00Z",
        ])
        .boxed(),
        "source" | "via" | "kind" => word(&["API", "", "other", "Admin"]).boxed(),
        "succeeded" | "simulator_only" | "allow_reactivation_on_purchase" => {
            prop_oneof![word(&["true", "yes"]), Just(Doc::Int(1)), Just(Doc::Null),].boxed()
        }
        "purchase_reference" => prop_oneof![
            Just(Doc::Str("r".repeat(201))),
            word(&["ref\u{7}", "ref\nnext"]),
        ]
        .boxed(),
        _ => prop_oneof![
            Just(Doc::Int(0)),
            Just(Doc::Int(-5)),
            Just(Doc::Int(i64::MIN)),
            select(RAW_NUMBERS).prop_map(Doc::Raw),
            word(&["4", "four", ""]),
            Just(Doc::Null),
            Just(Doc::Float(4.5)),
        ]
        .boxed(),
    }
}

/// A payload for `kind`: its fields with values that are valid, borderline or anything,
/// in some order, maybe with unknown or repeated keys. `noise` 0 is a clean payload.
fn payload(kind: &Kind) -> BoxedStrategy<Doc> {
    let kind = kind.clone();
    prop_oneof![2 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)]
        .prop_flat_map(move |noise| {
            let fields: Vec<BoxedStrategy<Option<(String, Doc)>>> = kind
                .fields
                .iter()
                .map(|field| {
                    let required = kind.required.contains(field);
                    let presence = match (required, noise) {
                        (true, 0) => 1.0,
                        (true, _) => 0.95,
                        (false, _) => 0.5,
                    };
                    let value = match noise {
                        0 => valid(field),
                        1 => prop_oneof![8 => valid(field), 1 => borderline(field)].boxed(),
                        _ => prop_oneof![
                            5 => valid(field),
                            2 => borderline(field),
                            2 => value(),
                        ]
                        .boxed(),
                    };
                    let field = field.clone();
                    (prop::bool::weighted(presence), value)
                        .prop_map(move |(present, value)| present.then(|| (field.clone(), value)))
                        .boxed()
                })
                .collect();
            let extra_keys = if noise < 2 { 0..1 } else { 0..3 };
            (
                fields,
                prop::collection::vec((key(kind.fields.clone()), value()), extra_keys),
                any::<Index>(),
                any::<bool>(),
            )
        })
        .prop_map(|(fields, extra, position, reverse)| {
            let mut entries: Vec<(String, Doc)> = fields.into_iter().flatten().collect();
            if reverse {
                entries.reverse();
            }
            for entry in extra {
                let at = position.index(entries.len() + 1);
                entries.insert(at, entry);
            }
            Doc::Obj(entries)
        })
        .boxed()
}

/// A change to JSON text that mostly breaks it.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(Index),
    Insert(Index, char),
    Delete(Index, usize),
    Append(&'static str),
    Prepend(&'static str),
    Twice,
    InArray,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), tricky_char()).prop_map(|(at, c)| Mutation::Insert(at, c)),
        (any::<Index>(), 1usize..8).prop_map(|(at, n)| Mutation::Delete(at, n)),
        select(vec![
            " ",
            "x",
            "}",
            ",",
            "\u{0}",
            "{}",
            "// comment",
            "\n\n",
            ","
        ])
        .prop_map(Mutation::Append),
        select(vec![" ", "\u{feff}", "x", "[", "\n"]).prop_map(Mutation::Prepend),
        Just(Mutation::Twice),
        Just(Mutation::InArray),
    ]
}

fn mutate(text: &str, mutation: &Mutation) -> String {
    let boundary = |at: &Index| {
        let chars: Vec<usize> = text
            .char_indices()
            .map(|(i, _)| i)
            .chain([text.len()])
            .collect();
        *at.get(&chars)
    };
    match mutation {
        Mutation::Truncate(at) => text[..boundary(at)].to_string(),
        Mutation::Insert(at, c) => {
            let at = boundary(at);
            format!("{}{c}{}", &text[..at], &text[at..])
        }
        Mutation::Delete(at, n) => {
            let at = boundary(at);
            let rest: String = text[at..].chars().skip(*n).collect();
            format!("{}{rest}", &text[..at])
        }
        Mutation::Append(tail) => format!("{text}{tail}"),
        Mutation::Prepend(head) => format!("{head}{text}"),
        Mutation::Twice => format!("{text}{text}"),
        Mutation::InArray => format!("[{text}]"),
    }
}

/// Bytes with a fair share of JSON punctuation, so that some get past the first byte.
fn json_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<u8>(),
            2 => select(b"{}[]\":,\\ 0123456789-+.eEtrufalsn".to_vec()),
            1 => Just(0xff_u8),
        ],
        0..200,
    )
}

/// A body for `kind`: what a decoder has to face.
fn body_text(kind: &Kind) -> BoxedStrategy<String> {
    prop_oneof![
        6 => payload(kind).prop_map(|doc| doc.render()),
        2 => value().prop_map(|doc| doc.render()),
        2 => (payload(kind), mutation()).prop_map(|(doc, change)| mutate(&doc.render(), &change)),
        1 => json_ish_bytes().prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        1 => any::<Vec<u8>>().prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ]
    .boxed()
}

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
                prop_assert!(job.account_id > 0, "{:?}", job);
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
// Property 2: the HTTP API.

const TOKEN: &str = "hostile-token-9c1e";

async fn start(backend: Backend) -> TestEnv {
    TestEnv::start_with(backend, |settings| {
        settings.http.api_tokens = vec![lifecycle::config::Secret::new(TOKEN.to_string())];
    })
    .await
}

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
            "k".repeat(200),
            "k".repeat(201),
            "k".repeat(10_000),
            "a\tb".to_string(),
            "clé".to_string(),
            "\u{7f}".to_string(),
            "key\u{1}".to_string(),
            "é".repeat(100),
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

/// What the HTTP layer (hyper) refuses itself, with an empty body, before the application
/// sees the request: header values with control characters (400), targets longer than
/// [`MAX_URI_BYTES`] (414, or 431 when the request head outgrows hyper's read buffer).
/// Out of the application's reach (see the report).
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
        if !key.is_ascii() || key.trim().is_empty() || key.trim().len() > 200 {
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
        let head_too_large = http_status == 414 && status == 431;
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

on_both_backends!(
    the_api_survives_hostile_requests,
    another_tenants_user_does_not_exist_here,
);
