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

/// The longest email address SMTP can carry (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;

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

/// The longest first or last name accepted.
const MAX_NAME_CHARS: usize = 100;

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
}
