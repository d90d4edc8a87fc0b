//! The payload rules every job kind shares, one file per concern:
//!
//! * [`refusal`]: [`InvalidPayload`], and naming the field a decoding error is about;
//! * [`fields`]: ids, country codes and languages;
//! * [`text`]: email addresses, people's names and the text patterns;
//! * [`request_time`]: how far a producer's `requested_at` may stray from the clock;
//! * `schema` (with the `utoipa` feature): the OpenAPI schemas of those fields, built from
//!   the same constants.
//!
//! The kinds import the rules from here, and the crate root re-exports the public
//! constants, so the file a rule lives in is not part of any path.

mod fields;
#[cfg(test)]
mod hostile_payloads;
mod refusal;
mod request_time;
#[cfg(feature = "utoipa")]
pub(crate) mod schema;
mod text;

pub use fields::{COUNTRY_CODES, LANGUAGES, MIN_ID};
pub(crate) use fields::{country_code, language, positive_id};
pub use refusal::InvalidPayload;
pub(crate) use refusal::name_missing_field;
pub(crate) use request_time::request_instant;
pub use text::{EMAIL_PATTERN, MAX_EMAIL_LEN, MAX_NAME_CHARS, NAME_PATTERN, NO_CONTROL_PATTERN};
pub(crate) use text::{email_address, person_name};
