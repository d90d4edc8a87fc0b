//! Hostile payloads through `decode`: each refused, naming the field at fault.

use serde::{Deserialize, Serialize};

use crate::{
    Actor, CreateUser, DeactivateSalesperson, DeactivateUser, InvalidPayload, Job,
    MAX_PAYLOAD_BYTES, Noop, PurchaseMade, UnlockUser, decode,
};

fn refusal<J: Job>(json: &str) -> InvalidPayload {
    match decode::<J>(json) {
        Ok(_) => panic!("{json:.200} was accepted"),
        Err(refusal) => {
            assert!(!refusal.field.is_empty(), "{json:.200}: {refusal:?}");
            assert!(!refusal.reason.is_empty(), "{json:.200}: {refusal:?}");
            refusal
        }
    }
}

fn field<J: Job>(json: &str) -> String {
    refusal::<J>(json).field
}

#[test]
fn a_wrong_type_names_its_field() {
    let err =
        refusal::<DeactivateUser>(r#"{"account_id": 1, "user_id": "four", "actor": "system"}"#);
    assert_eq!(err.field, "user_id", "{err}");
    assert!(err.reason.contains("expected i64"), "{err}");
    for (json, expected) in [
        (
            r#"{"account_id": "1", "user_id": 4, "actor": "system"}"#,
            "account_id",
        ),
        (
            r#"{"account_id": 1, "user_id": true, "actor": "system"}"#,
            "user_id",
        ),
        (
            r#"{"account_id": 1, "user_id": [4], "actor": "system"}"#,
            "user_id",
        ),
        (
            r#"{"account_id": 1, "user_id": {"id": 4}, "actor": "system"}"#,
            "user_id",
        ),
        (r#"{"account_id": 1, "user_id": 4, "actor": true}"#, "actor"),
        (r#"{"account_id": 1, "user_id": 4, "actor": 4.5}"#, "actor"),
        (
            r#"{"account_id": 1, "user_id": 4, "actor": "root"}"#,
            "actor",
        ),
        (
            r#"{"account_id": 1, "user_id": 4, "actor": "system", "reassign_to": "5"}"#,
            "reassign_to",
        ),
        (
            r#"{"account_id": 1, "user_id": 4, "actor": "system",
                "allow_reactivation_on_purchase": "yes"}"#,
            "allow_reactivation_on_purchase",
        ),
    ] {
        assert_eq!(field::<DeactivateUser>(json), expected, "{json}");
    }
    let via = r#"{"account_id": 1, "user_id": 4, "actor": 2, "via": "magic"}"#;
    let err = refusal::<UnlockUser>(via);
    assert_eq!(
        err.field, "via",
        "an unknown variant names the field, not the value"
    );
    assert!(err.reason.contains("magic"), "{err}");
}

#[test]
fn an_out_of_range_integer_names_its_field() {
    for value in [
        "1e40",
        "1e400",
        "-1e400",
        "4.0",
        "9223372036854775808",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
    ] {
        let json = format!(r#"{{"account_id": 1, "user_id": {value}, "actor": 2}}"#);
        let err = refusal::<DeactivateSalesperson>(&json);
        assert_eq!(err.field, "user_id", "{value}: {err}");
    }
    for value in ["-5", "0", "-9223372036854775808"] {
        let json = format!(r#"{{"account_id": 1, "user_id": {value}, "actor": 2}}"#);
        let err = refusal::<DeactivateSalesperson>(&json);
        assert_eq!(err.field, "user_id", "{value}: {err}");
        assert!(err.reason.contains("positive"), "{value}: {err}");
    }
    for actor in ["0", "-3", "9223372036854775808", "1e3", "\"user:-1\""] {
        let json = format!(r#"{{"account_id": 1, "user_id": 4, "actor": {actor}}}"#);
        assert_eq!(field::<DeactivateSalesperson>(&json), "actor", "{actor}");
    }
}

#[test]
fn null_where_required_names_the_field() {
    for (json, expected) in [
        (
            r#"{"account_id": null, "user_id": 4, "actor": 2}"#,
            "account_id",
        ),
        (
            r#"{"account_id": 1, "user_id": null, "actor": 2}"#,
            "user_id",
        ),
        (r#"{"account_id": 1, "user_id": 4, "actor": null}"#, "actor"),
    ] {
        assert_eq!(field::<DeactivateSalesperson>(json), expected, "{json}");
    }
    // An optional field may be null: the same as absent.
    let job: DeactivateSalesperson =
        decode(r#"{"account_id":1,"user_id":4,"actor":2,"reassign_contacts_to":null}"#).unwrap();
    assert_eq!(job.reassign_contacts_to, None);
    assert_eq!(
        field::<CreateUser>(
            r#"{"account_id": 1, "actor": 2, "first_name": null, "last_name": "L",
                "email": "a@b.io", "country": "ES", "language": "en",
                "role_id": 1, "team_id": 1}"#
        ),
        "first_name"
    );
}

#[test]
fn missing_fields_are_named_as_before() {
    let err = refusal::<DeactivateUser>(r#"{"account_id": 1, "actor": "system"}"#);
    assert_eq!(err.field, "user_id");
    assert!(err.reason.starts_with("missing field `user_id`"), "{err}");
    // The actor reports a wrong value in words of its own; missing, it is named too.
    for json in [
        r#"{"account_id": 1, "user_id": 4}"#,
        r#"{"user_id": 4, "account_id": 1, "reassign_to": 5}"#,
    ] {
        let err = refusal::<DeactivateUser>(json);
        assert_eq!(err.field, "actor", "{json}: {err}");
        assert_eq!(err.reason, "missing field `actor`");
    }
    let err = refusal::<DeactivateUser>(r#"{"account_id": 1, "user_id": 4, "actor": {}}"#);
    assert_eq!(err.field, "actor");
    assert!(err.reason.contains("positive user id"), "{err}");
    let err = refusal::<DeactivateUser>(
        r#"{"account_id": 1, "user_id": 4, "user_id": 5, "actor": "system"}"#,
    );
    assert_eq!(err.field, "user_id");
    assert!(err.reason.starts_with("duplicate field"), "{err}");
}

/// A payload type with an object inside, to check how nested paths are named.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Nested {
    account_id: i64,
    inner: Inner,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inner {
    user_id: i64,
    actor: Actor,
}

impl Job for Nested {
    const NAME: &'static str = "test::nested";
    const SLUG: &'static str = "nested";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        Ok(())
    }
}

#[test]
fn a_nested_wrong_type_names_its_top_level_field() {
    for json in [
        r#"{"account_id": 1, "inner": {"user_id": "x", "actor": 1}}"#,
        r#"{"account_id": 1, "inner": {"user_id": 1, "actor": [1]}}"#,
        r#"{"account_id": 1, "inner": {"actor": 1}}"#,
        r#"{"account_id": 1, "inner": {"user_id": 1, "actor": 1, "x": 0}}"#,
        r#"{"account_id": 1, "inner": 7}"#,
        r#"{"account_id": 1, "inner": {"user_id": 1e400, "actor": 1}}"#,
    ] {
        let err = refusal::<Nested>(json);
        assert_eq!(err.field, "inner", "{json}");
        // The reason says where inside.
        assert!(err.reason.contains("line 1 column"), "{err}");
    }
    // In the real payloads the only structured value is the actor.
    for actor in [
        r#"{"user": 4}"#,
        "[4]",
        r#"{"system": true}"#,
        r#"{"user": 1e400}"#,
        r#"[[1, 2], {"a": "\x"}]"#,
    ] {
        let json = format!(r#"{{"account_id": 1, "user_id": 4, "actor": {actor}}}"#);
        assert_eq!(field::<DeactivateUser>(&json), "actor", "{json}");
    }
}

#[test]
fn an_unknown_field_is_named() {
    let err = refusal::<Noop>(r#"{"account_id": 1, "mood": "grumpy"}"#);
    assert_eq!(err.field, "mood");
    assert!(err.reason.contains("unknown field"), "{err}");
    // Escapes are decoded before the name is reported.
    assert_eq!(
        field::<Noop>(r#"{"account_id": 1, "m\u006fod": 1}"#),
        "mood"
    );
    // The unknown field comes before the fields that are missing.
    assert_eq!(field::<Noop>(r#"{"acount_id": 1}"#), "acount_id");
    // A field named "" or " " cannot be named by a blank string.
    for json in [r#"{"": 1, "account_id": 1}"#, r#"{"": 1}"#] {
        let err = refusal::<Noop>(json);
        assert_eq!(err.field, "payload", "{json}");
        assert!(err.reason.contains("unknown field ``"), "{err}");
    }
    let err = refusal::<Noop>(r#"{"account_id": 1, " \t": 1}"#);
    assert_eq!(err.field, "payload");
    assert!(err.reason.contains("unknown field ` \t`"), "{err}");
}

#[test]
fn trailing_garbage_and_unfinished_documents_are_the_payload_s_fault() {
    for json in [
        r#"{"account_id": 1} x"#,
        r#"{"account_id": 1}{"account_id": 2}"#,
        r#"{"account_id": 1},"#,
        r#"{"account_id": 1,"#,
        r#"{"account_id": 1"#,
        r#"{"account_id": 1,}"#,
        r#"{"account_id" 1}"#,
        r#"{account_id: 1}"#,
        "{",
        "{\"account_id\": 1}\u{0}",
    ] {
        assert_eq!(field::<Noop>(json), "payload", "{json:?}");
    }
    // Whitespace around the object is fine.
    decode::<Noop>(" \n\t{\"account_id\": 1}\r\n ").unwrap();
    // A malformed value names its field.
    assert_eq!(field::<Noop>(r#"{"account_id": 1x}"#), "payload");
    assert_eq!(field::<Noop>(r#"{"account_id": tru}"#), "account_id");
    assert_eq!(
        field::<PurchaseMade>("{\"account_id\": 1, \"email\": \"a\u{1}@b.io\"}"),
        "email"
    );
}

#[test]
fn a_document_that_is_not_an_object_is_refused() {
    for json in [
        "",
        "   ",
        "null",
        "true",
        "1",
        "-1",
        "\"account_id\"",
        "[]",
        "[1]",
        // serde would take a struct as the array of its fields: not a payload.
        r#"[1, 4, "system"]"#,
        "\u{feff}{\"account_id\": 1}",
    ] {
        let err = refusal::<DeactivateUser>(json);
        assert_eq!(err.field, "payload", "{json:?}");
        assert!(err.reason.contains("object"), "{json:?}: {err}");
    }
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    let depth = 10_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let unclosed = "[".repeat(depth);
    // Not an object: refused before it is read; deep objects: "a" is unknown.
    assert_eq!(field::<Noop>(&arrays), "payload");
    assert_eq!(field::<Noop>(&unclosed), "payload");
    assert_eq!(field::<Noop>(&objects), "a");
    // (4,000 levels: 10,000 would pass the size limit.)
    let deep_known = format!(
        "{}1{}",
        r#"{"account_id":"#.repeat(4_000),
        "}".repeat(4_000)
    );
    let err = refusal::<Noop>(&deep_known);
    assert_eq!(err.field, "account_id", "{err:.300}");
    for deep in [&arrays, &objects, &unclosed] {
        // As the value of a field: the actor is buffered before it is read, a
        // place where an unbounded recursion would show.
        for kind_field in ["account_id", "user_id", "actor", "reassign_to"] {
            let json = format!(r#"{{"{kind_field}": {deep}}}"#);
            let err = refusal::<DeactivateUser>(&json);
            assert_eq!(err.field, kind_field, "{err:.300}");
        }
        let json = format!(r#"{{"account_id": 1, "user_id": 4, "actor": 2, "via": {deep}}}"#);
        assert_eq!(field::<UnlockUser>(&json), "via");
    }
    // serde_json's limit: 128 levels. The actor is the one field that reads any
    // value (to buffer it); below and beyond the limit it is refused for its type
    // (the actor's own message replaces serde_json's "recursion limit exceeded").
    let nested = |levels: usize| {
        format!(
            r#"{{"account_id": 1, "user_id": 4, "actor": {}{}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    for levels in [1, 127, 128, 200] {
        let err = refusal::<DeactivateUser>(&nested(levels));
        assert_eq!(err.field, "actor", "{levels}");
        assert!(
            err.reason.contains("positive user id"),
            "{levels}: {err:.300}"
        );
    }
    // Where nothing replaces it, serde_json's own refusal shows through.
    let mut deep = serde_json::Deserializer::from_str(&arrays);
    let refused: Result<serde_json::Value, _> = serde_path_to_error::deserialize(&mut deep);
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("recursion limit exceeded")
    );
}

#[test]
fn huge_strings_within_and_beyond_the_limit() {
    // Within the limit: decoded, then refused by the field's own rule.
    let name = "n".repeat(MAX_PAYLOAD_BYTES - 300);
    let json = format!(
        r#"{{"account_id": 1, "actor": 2, "first_name": "{name}", "last_name": "L",
            "email": "a@b.io", "country": "ES", "language": "en",
            "role_id": 1, "team_id": 1}}"#
    );
    assert!(json.len() <= MAX_PAYLOAD_BYTES);
    let err = refusal::<CreateUser>(&json);
    assert_eq!(err.field, "first_name");
    assert!(err.reason.contains("at most 100"), "{:.200}", err.reason);
    let reference = "r".repeat(MAX_PAYLOAD_BYTES - 100);
    let json =
        format!(r#"{{"account_id": 1, "email": "a@b.io", "purchase_reference": "{reference}"}}"#);
    assert_eq!(field::<PurchaseMade>(&json), "purchase_reference");
    let email = format!("{}@b.io", "a".repeat(MAX_PAYLOAD_BYTES - 100));
    let json = format!(r#"{{"account_id": 1, "email": "{email}"}}"#);
    assert_eq!(field::<PurchaseMade>(&json), "email");
    // A huge string where a number belongs names the field.
    let json = format!(
        r#"{{"account_id": "{}"}}"#,
        "9".repeat(MAX_PAYLOAD_BYTES - 50)
    );
    assert_eq!(field::<Noop>(&json), "account_id");
    let json = format!(
        r#"{{"account_id": {}}}"#,
        "9".repeat(MAX_PAYLOAD_BYTES - 50)
    );
    assert_eq!(field::<Noop>(&json), "account_id");
    // A huge unknown field name.
    let key = "k".repeat(MAX_PAYLOAD_BYTES - 50);
    let json = format!(r#"{{"{key}": 1}}"#);
    assert_eq!(field::<Noop>(&json), key);
    // Exactly at the limit: read; one byte more: refused before it is decoded.
    let at_limit = format!(
        r#"{{"account_id": 1{}}}"#,
        " ".repeat(MAX_PAYLOAD_BYTES - 17)
    );
    assert_eq!(at_limit.len(), MAX_PAYLOAD_BYTES);
    decode::<Noop>(&at_limit).unwrap();
    let beyond = format!("{at_limit} ");
    let err = refusal::<Noop>(&beyond);
    assert_eq!(err.field, "payload");
    assert!(err.reason.contains("limit"), "{err}");
    let huge = format!(r#"{{"account_id": 1, "x": "{}"}}"#, "x".repeat(10 << 20));
    assert_eq!(field::<Noop>(&huge), "payload");
}
