//! Rules for the structured fields: ids, country codes, languages. Each one the OpenAPI
//! schema of its field repeats from the same constant (see [`super::schema`]).

use super::InvalidPayload;

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
}
