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

    /// Turns a serde_json error into a refusal naming the missing or mistyped field when
    /// serde tells it.
    pub fn from_json(error: serde_json::Error) -> Self {
        let message = error.to_string();
        let field = backticked(&message).unwrap_or("payload").to_string();
        Self::new(field, message)
    }
}

impl fmt::Display for InvalidPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

/// serde names fields between backticks: "missing field `user_id` at line 1 column 2".
fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// Refuses an id that is not a positive integer.
pub(crate) fn positive_id(field: &str, id: i64) -> Result<(), InvalidPayload> {
    if id > 0 {
        Ok(())
    } else {
        Err(InvalidPayload::new(
            field,
            format!("must be a positive id, not {id}"),
        ))
    }
}
