//! What the overview and the operators' pages share with their templates: the signed-in
//! operator's context and times shown as text.

use serde_json::json;

use super::AdminError;
use super::session::Signed;
use crate::queue::admin::Operator;

/// What every page's layout needs: who is signed in, the CSRF token of its forms.
pub fn operator(signed: &Signed) -> serde_json::Value {
    json!({ "name": signed.name, "role": signed.role.as_str(), "may_act": signed.role.may_act(),
            "csrf": signed.csrf })
}

/// The signed-in operator as the queue's actions record them; a viewer is refused.
pub fn acting(signed: &Signed) -> Result<Operator, AdminError> {
    signed.may_act()?;
    Ok(Operator::new(&signed.name)?)
}

/// An instant in milliseconds, in UTC.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), shown)
}

pub fn shown(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A span in milliseconds, to the second under a minute, to the minute past an hour.
pub fn duration(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// Percent-encodes all but the unreserved characters, for a query string.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
