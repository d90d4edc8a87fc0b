use std::fmt;

/// Why a payload was refused: the field at fault and what is wrong with it.
///
/// A job refused this way is a permanent failure: it is never retried.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidPayload {
    /// The field at fault (`user_id`), or `payload` when the whole document is malformed.
    pub field: String,
    /// What is wrong with it, in words an operator can act on.
    pub reason: String,
}

impl InvalidPayload {
    /// A refusal naming `field` and the `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Turns a serde_json error into a refusal naming the missing, duplicate or unknown
    /// field when the message names it, `payload` otherwise. Without the path of the value
    /// at fault a type error cannot name its field: [`decode`](crate::decode) uses
    /// [`InvalidPayload::from_json_at`].
    pub fn from_json(error: serde_json::Error) -> Self {
        let message = error.to_string();
        let field = field_named_in(&message).unwrap_or("payload").to_string();
        Self::new(field, message)
    }

    /// Turns a serde_json error and the path where it happened into a refusal naming the
    /// top-level field at fault: the value of the wrong type, out of range or malformed
    /// (`user_id`, `actor`), the unknown field, or the missing one; `payload` when the
    /// document as a whole is at fault (trailing characters, an unfinished object).
    ///
    /// Payloads are flat objects, so the field is the first step of the path: a path that
    /// goes on is inside a value of the wrong shape (`actor[0][0]…` for an actor sent as
    /// nested arrays), and the value's field is the one to fix. The reason keeps serde's
    /// line and column.
    pub fn from_json_at(error: serde_path_to_error::Error<serde_json::Error>) -> Self {
        use serde_path_to_error::Segment;
        let top = match error.path().iter().next() {
            Some(Segment::Map { key } | Segment::Enum { variant: key })
                if !key.trim().is_empty() =>
            {
                Some(key.clone())
            }
            _ => None,
        };
        let message = error.into_inner().to_string();
        let field = match (top, field_named_in(&message)) {
            (Some(top), _) => top,
            // A missing or duplicate field is reported at the object it belongs in.
            (None, Some(name)) if is_missing_or_duplicate(&message) => name.to_string(),
            // The document itself, or an unknown field named "" or " " (named in the
            // reason: a blank field would name nothing).
            _ => "payload".to_string(),
        };
        Self::new(field, message)
    }
}

/// A refusal of a well-formed object that names no field comes from a field that is
/// missing but whose type reports it in words of its own (the actor: "actor must be
/// \"system\" or a positive user id, not a value of another type"): serde says where a
/// value is wrong, not which absent field a type refused. Names the absent field of `J`
/// that the reason mentions; otherwise the refusal is left as it is.
pub(crate) fn name_missing_field<J: serde::de::DeserializeOwned>(
    json: &str,
    refusal: InvalidPayload,
) -> InvalidPayload {
    // Serde's own words about fields ("unknown field ``") are not about a missing one.
    if refusal.field != "payload" || about_a_field(&refusal.reason) {
        return refusal;
    }
    let Ok(object) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
    else {
        return refusal;
    };
    let mentioned = |field: &str| {
        refusal
            .reason
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word == field)
    };
    match struct_fields::<J>()
        .iter()
        .find(|field| !object.contains_key(**field) && mentioned(field))
    {
        Some(field) => InvalidPayload::new(*field, format!("missing field `{field}`")),
        None => refusal,
    }
}

/// The field names of a struct that derives `Deserialize`, in declaration order, as serde
/// hands them to a deserializer; empty for any other type.
fn struct_fields<J: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Deserializer, Visitor};

    #[derive(Debug)]
    struct Stop;

    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("field names read")
        }
    }

    impl std::error::Error for Stop {}

    impl serde::de::Error for Stop {
        fn custom<T: fmt::Display>(_: T) -> Self {
            Stop
        }
    }

    struct FieldNames<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for FieldNames<'_> {
        type Error = Stop;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = J::deserialize(FieldNames(&mut fields));
    fields
}

fn is_missing_or_duplicate(message: &str) -> bool {
    message.starts_with("missing field `") || message.starts_with("duplicate field `")
}

impl fmt::Display for InvalidPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

/// serde names fields between backticks: "missing field `user_id` at line 1 column 2",
/// "unknown field `usr`, expected ...". Other messages quote values the same way
/// ("invalid type: floating point `1e40`", "unknown variant `root`"): those name no field.
fn field_named_in(message: &str) -> Option<&str> {
    let rest = FIELD_MESSAGES
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))?;
    let name = &rest[..rest.find('`')?];
    (!name.is_empty()).then_some(name)
}

/// How serde starts a message about a field by name.
const FIELD_MESSAGES: [&str; 3] = ["missing field `", "duplicate field `", "unknown field `"];

fn about_a_field(message: &str) -> bool {
    FIELD_MESSAGES
        .iter()
        .any(|prefix| message.starts_with(prefix))
}

/// The smallest id: every id (account, user, role, team...) is a positive integer. The
/// OpenAPI schemas of the id fields take their `minimum` from here.
pub const MIN_ID: i64 = 1;

/// Refuses an id that is not a positive integer.
pub(crate) fn positive_id(field: &str, id: i64) -> Result<(), InvalidPayload> {
    if id >= MIN_ID {
        Ok(())
    } else {
        Err(InvalidPayload::new(
            field,
            format!("must be a positive id, not {id}"),
        ))
    }
}

/// Every officially assigned ISO 3166-1 alpha-2 code, sorted: the countries accepted, and
/// the `enum` of the country fields in the OpenAPI document.
pub const COUNTRY_CODES: &[&str] = &crate::country::ISO_3166_1_ALPHA_2;

/// Refuses a code that is not an officially assigned ISO 3166-1 alpha-2 country code
/// (upper case, `ES`).
pub(crate) fn country_code(field: &str, code: &str) -> Result<(), InvalidPayload> {
    if crate::country::ISO_3166_1_ALPHA_2
        .binary_search(&code)
        .is_ok()
    {
        return Ok(());
    }
    let upper = code.to_ascii_uppercase();
    let hint = if upper != code
        && crate::country::ISO_3166_1_ALPHA_2
            .binary_search(&upper.as_str())
            .is_ok()
    {
        format!(" (write it in upper case: {upper:?})")
    } else {
        String::new()
    };
    Err(InvalidPayload::new(
        field,
        format!("must be an ISO 3166-1 alpha-2 country code such as \"ES\", not {code:?}{hint}"),
    ))
}

/// The languages users can have; emails are written in each of them.
pub const LANGUAGES: [&str; 4] = ["en", "es", "fr", "pt"];

pub(crate) fn language(field: &str, code: &str) -> Result<(), InvalidPayload> {
    if LANGUAGES.contains(&code) {
        Ok(())
    } else {
        Err(InvalidPayload::new(
            field,
            format!("must be one of en, es, fr, pt, not {code:?}"),
        ))
    }
}

/// The longest email address SMTP can carry (RFC 5321 path limit), in bytes.
pub const MAX_EMAIL_LEN: usize = 254;

/// What every accepted email address matches (one `@`, a dot in the domain, no spaces);
/// the address check below is stricter, so whatever fails this pattern is refused too. The
/// OpenAPI schema of the email fields carries it.
pub const EMAIL_PATTERN: &str = r"^[^@\s]+@[^@\s]+\.[^@\s]+$";

/// A plausible mailbox address: one `@`, a local part and a dotted domain, no spaces or
/// control characters, no display name. Deliverability is the mail server's business.
pub(crate) fn email_address(field: &str, email: &str) -> Result<(), InvalidPayload> {
    let refuse = |why: &str| Err(InvalidPayload::new(field, format!("{why}, not {email:?}")));
    if email.is_empty() {
        return Err(InvalidPayload::new(field, "must not be empty"));
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err(InvalidPayload::new(
            field,
            format!("must be at most {MAX_EMAIL_LEN} characters"),
        ));
    }
    if email.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '<' | '>' | ',' | ';' | '"' | '(' | ')' | '[' | ']' | '\\'
            )
    }) {
        return refuse("must be a bare address without spaces, quotes, brackets or separators");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return refuse("must be an email address like name@example.com");
    };
    if local.is_empty()
        || local.len() > 64
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return refuse("must have a valid part before the @");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return refuse("must have a domain like example.com after the @");
    }
    Ok(())
}

/// The longest first or last name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A person's name exactly as [`person_name`] accepts it: no control character (Unicode
/// `Cc`: U+0000–U+001F, U+007F–U+009F) and at least one character that is not a space.
pub const NAME_PATTERN: &str =
    r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

/// Free text without control characters (a purchase reference), as the validators accept it.
pub const NO_CONTROL_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";

/// A person's name: not blank, at most 100 characters, no control characters.
pub(crate) fn person_name(field: &str, name: &str) -> Result<(), InvalidPayload> {
    if name.trim().is_empty() {
        return Err(InvalidPayload::new(field, "must not be blank"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(InvalidPayload::new(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(InvalidPayload::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// How far ahead of the service's clock a producer's `requested_at` may be: machines'
/// clocks drift; a time further ahead is a mistake, not drift.
pub const REQUESTED_AT_MAX_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// How far back a `requested_at` may reach: about one billing cycle. A backlog or a retry
/// may delay a job by hours or days; a request older than this is a replayed or mistaken
/// one, and honoring it would stop billing for cycles already invoiced.
pub const REQUESTED_AT_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::days(35);

/// The instant a request counts from: the producer's `requested_at`, checked by
/// [`requested_at`], or else `enqueued_at`, the service's clock when it recorded the job.
pub(crate) fn request_instant(
    at: Option<chrono::DateTime<chrono::Utc>>,
    enqueued_at: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, InvalidPayload> {
    match at {
        Some(at) => requested_at("requested_at", at, enqueued_at),
        None => Ok(enqueued_at),
    }
}

/// Checks a producer's `requested_at` against `enqueued_at`, the service's clock when the job
/// was recorded, and gives the instant the request counts from: refused when further ahead
/// than [`REQUESTED_AT_MAX_SKEW`] or older than [`REQUESTED_AT_MAX_AGE`]; a time ahead within
/// the allowance counts as `enqueued_at` (a request cannot come after it was recorded).
pub(crate) fn requested_at(
    field: &str,
    at: chrono::DateTime<chrono::Utc>,
    enqueued_at: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, InvalidPayload> {
    if at > enqueued_at + REQUESTED_AT_MAX_SKEW {
        return Err(InvalidPayload::new(
            field,
            format!(
                "{} is in the future: it was enqueued at {}, and may be at most {} minutes ahead",
                at.to_rfc3339(),
                enqueued_at.to_rfc3339(),
                REQUESTED_AT_MAX_SKEW.num_minutes()
            ),
        ));
    }
    if at < enqueued_at - REQUESTED_AT_MAX_AGE {
        return Err(InvalidPayload::new(
            field,
            format!(
                "{} is more than {} days before it was enqueued ({})",
                at.to_rfc3339(),
                REQUESTED_AT_MAX_AGE.num_days(),
                enqueued_at.to_rfc3339()
            ),
        ));
    }
    Ok(at.min(enqueued_at))
}

/// The OpenAPI schemas of the validated fields, built from the constants the validators
/// use, so the document cannot say something else than what is enforced. Each field names
/// its function with `#[schema(schema_with = ...)]`.
#[cfg(feature = "utoipa")]
pub(crate) mod schema {
    use utoipa::openapi::schema::{
        KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type,
    };

    use super::{
        COUNTRY_CODES, EMAIL_PATTERN, LANGUAGES, MAX_EMAIL_LEN, MAX_NAME_CHARS, MIN_ID,
        NAME_PATTERN, NO_CONTROL_PATTERN,
    };

    fn nullable(kind: Type) -> SchemaType {
        SchemaType::from_iter([kind, Type::Null])
    }

    fn id_of(kind: SchemaType) -> Object {
        ObjectBuilder::new()
            .schema_type(kind)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(MIN_ID as isize))
            // The wire form is an i64: a larger number is refused as out of range.
            .maximum(Some(i64::MAX as isize))
            .build()
    }

    /// A positive id.
    pub(crate) fn id() -> Object {
        id_of(SchemaType::Type(Type::Integer))
    }

    /// A positive id, or absent (`null`).
    pub(crate) fn optional_id() -> Object {
        id_of(nullable(Type::Integer))
    }

    fn country_of(kind: SchemaType, null: bool) -> Object {
        let mut codes: Vec<serde_json::Value> = COUNTRY_CODES.iter().map(|c| (*c).into()).collect();
        if null {
            codes.push(serde_json::Value::Null);
        }
        ObjectBuilder::new()
            .schema_type(kind)
            .description(Some("ISO 3166-1 alpha-2 country code, upper case (`ES`)"))
            .enum_values(Some(codes))
            .build()
    }

    /// An assigned ISO 3166-1 alpha-2 code.
    pub(crate) fn country() -> Object {
        country_of(SchemaType::Type(Type::String), false)
    }

    /// An assigned ISO 3166-1 alpha-2 code, or absent.
    pub(crate) fn optional_country() -> Object {
        country_of(nullable(Type::String), true)
    }

    /// One of the languages with email templates.
    pub(crate) fn language() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(LANGUAGES))
            .build()
    }

    /// An email address.
    pub(crate) fn email() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(MAX_EMAIL_LEN))
            .pattern(Some(EMAIL_PATTERN))
            .build()
    }

    /// A first or last name.
    pub(crate) fn person_name() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_NAME_CHARS))
            .pattern(Some(NAME_PATTERN))
            .build()
    }

    /// A purchase reference: short text without control characters, or absent.
    pub(crate) fn purchase_reference() -> Object {
        ObjectBuilder::new()
            .schema_type(nullable(Type::String))
            .max_length(Some(crate::purchase_made::MAX_REFERENCE_CHARS))
            .pattern(Some(NO_CONTROL_PATTERN))
            .build()
    }

    /// The secret of a confirmation link, or its sealed digest.
    pub(crate) fn confirmation_token() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(crate::confirm_user::token_pattern()))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_the_assigned_upper_case_ones() {
        for ok in ["ES", "US", "BR", "FR", "PT", "MX", "CL"] {
            country_code("country", ok).unwrap();
        }
        for bad in ["", "E", "ESP", "XX", "UK", "EU", "12", "É"] {
            let refusal = country_code("country", bad).unwrap_err();
            assert_eq!(refusal.field, "country");
        }
        let lower = country_code("country", "es").unwrap_err();
        assert!(lower.reason.contains("upper case: \"ES\""), "{lower}");
    }

    #[test]
    fn languages_are_the_four_with_templates() {
        for ok in LANGUAGES {
            language("language", ok).unwrap();
        }
        for bad in ["de", "EN", "", "pt-BR"] {
            assert_eq!(language("language", bad).unwrap_err().field, "language");
        }
    }

    #[test]
    fn email_addresses() {
        for ok in [
            "ana@example.com",
            "Ana.Lopez+crm@mail.example.co.uk",
            "joão@exemplo.com.br",
            "a@b.io",
        ] {
            email_address("email", ok).unwrap();
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        let too_long = format!("a@{}.com", "b".repeat(260));
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "ana@@example.com",
            "ana lopez@example.com",
            "Ana <ana@example.com>",
            "ana@example.com, bob@example.com",
            "ana@exa_mple.com",
            "ana@-example.com",
            ".ana@example.com",
            "an..a@example.com",
            "ana@example..com",
            "ana@example.com\r\nBcc: x@y.z",
            long_local.as_str(),
            too_long.as_str(),
        ] {
            let refusal = email_address("email", bad).unwrap_err();
            assert_eq!(refusal.field, "email", "{bad:?}");
        }
    }

    #[test]
    fn requested_at_within_skew_and_age() {
        let enqueued: chrono::DateTime<chrono::Utc> = "2026-03-31T23:59:59Z".parse().unwrap();
        let past = enqueued - chrono::TimeDelta::days(3);
        assert_eq!(requested_at("requested_at", past, enqueued).unwrap(), past);
        let slightly_ahead = enqueued + chrono::TimeDelta::minutes(4);
        assert_eq!(
            requested_at("requested_at", slightly_ahead, enqueued).unwrap(),
            enqueued
        );
        let ahead = enqueued + chrono::TimeDelta::minutes(6);
        let err = requested_at("requested_at", ahead, enqueued).unwrap_err();
        assert_eq!(err.field, "requested_at");
        assert!(err.reason.contains("future"), "{err}");
        let ancient = enqueued - chrono::TimeDelta::days(36);
        let err = requested_at("requested_at", ancient, enqueued).unwrap_err();
        assert_eq!(err.field, "requested_at");
        assert!(err.reason.contains("35 days"), "{err}");
    }

    #[test]
    fn person_names() {
        person_name("first_name", "Ana María").unwrap();
        person_name("first_name", "<b>O'Brien</b>").unwrap();
        for bad in ["", "   ", "Ana\nBcc", &"x".repeat(101)] {
            assert_eq!(
                person_name("first_name", bad).unwrap_err().field,
                "first_name"
            );
        }
        person_name("first_name", &"é".repeat(100)).unwrap();
    }

    /// Hostile payloads through `decode`: each refused, naming the field at fault.
    mod hostile_payloads {
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
            let err = refusal::<DeactivateUser>(
                r#"{"account_id": 1, "user_id": "four", "actor": "system"}"#,
            );
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
                decode(r#"{"account_id":1,"user_id":4,"actor":2,"reassign_contacts_to":null}"#)
                    .unwrap();
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
                let json =
                    format!(r#"{{"account_id": 1, "user_id": 4, "actor": 2, "via": {deep}}}"#);
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
            let json = format!(
                r#"{{"account_id": 1, "email": "a@b.io", "purchase_reference": "{reference}"}}"#
            );
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
    }
}
