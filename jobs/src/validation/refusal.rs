//! Why a payload is refused, and which field a decoding error is about: serde reports
//! where a value went wrong in its own words; producers need the field to fix.

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
