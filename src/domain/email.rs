//! How emails compare (SPEC section 3): case-insensitively in full Unicode, on both
//! backends. The comparison key is computed here, in Rust, and stored beside the address
//! (`email_normalized`), because SQLite's `lower()` folds ASCII only.

/// The form two emails are compared in: surrounding whitespace trimmed, every character
/// lower-cased (`Bob@Example.com` and `bob@example.com` are one address; so are
/// `JOÃO@x.com` and `joão@x.com`).
///
/// Character by character, not [`str::to_lowercase`]: that one lower-cases a final capital
/// sigma to `ς`, so `ΟΔΟΣ@x.gr` would not match `οδοσ@x.gr`; per character it is `σ`, as
/// PostgreSQL's `lower()` (which fills rows the CRM writes directly) also has it.
pub fn normalize_email(email: &str) -> String {
    email.trim().chars().flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_case_is_folded() {
        assert_eq!(normalize_email("Bob@Example.COM"), "bob@example.com");
        assert_eq!(normalize_email("bob@example.com"), "bob@example.com");
    }

    #[test]
    fn unicode_case_is_folded() {
        assert_eq!(normalize_email("JOÃO@x.com"), normalize_email("joão@x.com"));
        assert_eq!(normalize_email("ÉLODIE@X.FR"), "élodie@x.fr");
        assert_eq!(normalize_email("ΟΔΟΣ@x.gr"), normalize_email("οδοσ@x.gr"));
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        assert_eq!(normalize_email("  Ana@Acme.test \t"), "ana@acme.test");
    }

    #[test]
    fn different_addresses_stay_different() {
        assert_ne!(
            normalize_email("ana@acme.test"),
            normalize_email("anna@acme.test")
        );
    }
}
