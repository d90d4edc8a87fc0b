//! Request-time rules: how far a producer's `requested_at` may stray from the service's
//! clock, and which instant a request counts from.

use super::InvalidPayload;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
