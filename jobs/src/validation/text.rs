//! Rules for free text: email addresses, people's names and the patterns the OpenAPI
//! document publishes for them. Text ends up in email headers and HTML, hence the strictness
//! about control characters and separators.

use super::InvalidPayload;

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

#[cfg(test)]
mod tests {
    use super::*;

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
