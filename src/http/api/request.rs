//! The checks of a request body and headers that both enqueue routes share, before the
//! payload itself is validated: the Content-Type, the size limit, the idempotency key, and
//! whether the validated payload acts as `system`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use lifecycle_jobs::InvalidPayload;

use super::ApiError;

/// The header a producer sets so that a retried request enqueues nothing new.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Longer keys are refused: they are stored and indexed with every job.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;

/// The keys [`checked_key`] accepts once HTTP has trimmed the header value: visible ASCII,
/// spaces and tabs only inside. Published in the OpenAPI document.
pub const IDEMPOTENCY_KEY_PATTERN: &str = r"^[\x21-\x7e]([\t\x20-\x7e]*[\x21-\x7e])?$";

/// Whether a validated payload names `"system"` as its actor. The canonical payload holds
/// the actor as the string `"system"` or a user id; kinds without an actor have none.
pub(super) fn acts_as_system(payload: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct ActorOnly {
        #[serde(default)]
        actor: Option<lifecycle_jobs::Actor>,
    }
    serde_json::from_str::<ActorOnly>(payload)
        .is_ok_and(|only| only.actor == Some(lifecycle_jobs::Actor::System))
}

/// JSON or a `+json` type; a missing Content-Type is refused too, as with axum's `Json`.
pub(super) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase());
    match mime {
        Some(mime) if mime == "application/json" || mime.ends_with("+json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| InvalidPayload::new("Idempotency-Key", "must be visible ASCII"))?;
    Ok(Some(checked_key("Idempotency-Key", key)?))
}

/// A producer's idempotency key (a header or a batch item's `idempotency_key`): visible
/// ASCII (spaces and tabs inside), not blank, at most 200 bytes once trimmed.
pub(super) fn checked_key(field: &str, key: &str) -> Result<String, InvalidPayload> {
    let invalid = |reason: String| InvalidPayload::new(field, reason);
    if !key.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return Err(invalid("must be visible ASCII".into()));
    }
    let key = key.trim();
    if key.is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    if key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(invalid(format!(
            "must be at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes"
        )));
    }
    Ok(key.to_string())
}

/// The body, or 413 past `limit` (the route's [`DefaultBodyLimit`](axum::extract::DefaultBodyLimit)).
pub(super) fn read_body(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::UnreadableBody(rejection.body_text())
        }
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn system_actor_is_read_from_the_canonical_payload() {
        assert!(acts_as_system(
            r#"{"account_id":1,"user_id":2,"actor":"system"}"#
        ));
        assert!(!acts_as_system(r#"{"account_id":1,"user_id":2,"actor":7}"#));
        assert!(!acts_as_system(r#"{"account_id":1,"user_id":2}"#));
    }

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(require_json(&headers).is_err());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(require_json(&headers).is_ok());
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(require_json(&headers).is_err());
    }
}
