//! What both hostile-input suites generate: the kinds and their fields read from the
//! OpenAPI document, JSON documents rendered by hand (duplicate keys, numbers out of range,
//! invalid escapes), payloads with valid, borderline and arbitrary values, mutations of
//! their text, and the service started with the token the requests carry.
//!
//! Used by `tests/hostile_payloads.rs` and `tests/hostile_http.rs`.

use std::sync::Arc;

use lifecycle_jobs::{KINDS, MAX_EMAIL_LEN, MAX_NAME_CHARS, MAX_REFERENCE_CHARS, TOKEN_LEN};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestRunner};

use super::{Backend, TestEnv};

/// The bearer token every hostile request that should get through carries.
pub const TOKEN: &str = "hostile-token-9c1e";

pub async fn start(backend: Backend) -> TestEnv {
    TestEnv::start_with(backend, |settings| {
        settings.http.api_tokens = vec![lifecycle::config::Secret::new(TOKEN.to_string())];
    })
    .await
}

/// `HOSTILE_INPUT_SCALE=10` multiplies every case count.
pub fn scaled(cases: u32) -> u32 {
    let scale = std::env::var("HOSTILE_INPUT_SCALE")
        .ok()
        .and_then(|scale| scale.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    cases.saturating_mul(scale)
}

pub fn runner(cases: u32) -> TestRunner {
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
pub struct Kind {
    pub name: &'static str,
    pub slug: &'static str,
    pub fields: Vec<String>,
    pub required: Vec<String>,
}

pub fn kinds() -> Arc<Vec<Kind>> {
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
            // Every job belongs to an account, except the sweeps, which may span them all.
            assert!(
                fields.contains(&"account_id".to_string()) || name.starts_with("sweep::"),
                "{slug}"
            );
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
pub enum Doc {
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
    pub fn render(&self) -> String {
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
pub const RAW_NUMBERS: &[&str] = &[
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
pub const RAW_STRINGS: &[&str] = &[
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

pub fn tricky_char() -> impl Strategy<Value = char> {
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

pub fn text() -> impl Strategy<Value = String> {
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
            // At and past the limits: names, references, email addresses, confirmation
            // tokens; 64 is an email's local part (RFC 5321), a limit with no constant.
            select(vec![
                64usize,
                MAX_NAME_CHARS,
                MAX_NAME_CHARS + 1,
                MAX_REFERENCE_CHARS,
                MAX_REFERENCE_CHARS + 1,
                MAX_EMAIL_LEN + 1,
                *TOKEN_LEN.end() + 1,
                5_000,
                70_000,
            ]),
        )
            .prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

pub fn leaf() -> impl Strategy<Value = Doc> {
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
pub fn value() -> BoxedStrategy<Doc> {
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
pub fn key(fields: Vec<String>) -> BoxedStrategy<String> {
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
pub fn valid(field: &str) -> BoxedStrategy<Doc> {
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
            prop::collection::vec(select(alphabet), *TOKEN_LEN.start()..=64)
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
pub fn borderline(field: &str) -> BoxedStrategy<Doc> {
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
            Just(Doc::Str("x".repeat(MAX_NAME_CHARS + 1))),
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
            Just(Doc::Str("r".repeat(MAX_REFERENCE_CHARS + 1))),
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
pub fn payload(kind: &Kind) -> BoxedStrategy<Doc> {
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
pub enum Mutation {
    Truncate(Index),
    Insert(Index, char),
    Delete(Index, usize),
    Append(&'static str),
    Prepend(&'static str),
    Twice,
    InArray,
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
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

pub fn mutate(text: &str, mutation: &Mutation) -> String {
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
pub fn json_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
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
pub fn body_text(kind: &Kind) -> BoxedStrategy<String> {
    prop_oneof![
        6 => payload(kind).prop_map(|doc| doc.render()),
        2 => value().prop_map(|doc| doc.render()),
        2 => (payload(kind), mutation()).prop_map(|(doc, change)| mutate(&doc.render(), &change)),
        1 => json_ish_bytes().prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        1 => any::<Vec<u8>>().prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ]
    .boxed()
}
