//! Confirmation links: single use, expiring, only the latest one works.

use chrono::{DateTime, Duration, Utc};

/// What the rule needs to know of a stored link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub superseded_at: Option<DateTime<Utc>>,
}

/// Why a link does not confirm anyone.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    #[error("the confirmation link is not valid for this user")]
    Unknown,
    #[error("the confirmation link was already used at {0}")]
    AlreadyUsed(DateTime<Utc>),
    #[error("the confirmation link was replaced by a newer one at {0}; use the latest email")]
    Superseded(DateTime<Utc>),
    #[error("the confirmation link expired at {0}; ask for a new one")]
    Expired(DateTime<Utc>),
}

/// Whether `link` (`None`: no link of this user has that secret) confirms at `now`. A link
/// is valid up to, not including, its expiry instant.
pub fn check_link(link: Option<&LinkState>, now: DateTime<Utc>) -> Result<(), LinkRefusal> {
    let link = link.ok_or(LinkRefusal::Unknown)?;
    if let Some(used_at) = link.used_at {
        return Err(LinkRefusal::AlreadyUsed(used_at));
    }
    if let Some(superseded_at) = link.superseded_at {
        return Err(LinkRefusal::Superseded(superseded_at));
    }
    if now >= link.expires_at {
        return Err(LinkRefusal::Expired(link.expires_at));
    }
    Ok(())
}

/// When a link sent at `sent_at` stops working.
pub fn expires_at(sent_at: DateTime<Utc>, ttl_hours: u32) -> DateTime<Utc> {
    sent_at + Duration::hours(i64::from(ttl_hours.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 11, 23, hour, 0, 0).unwrap()
    }

    #[test]
    fn a_fresh_link_confirms_until_its_expiry_instant() {
        let link = LinkState {
            expires_at: expires_at(at(0), 72),
            used_at: None,
            superseded_at: None,
        };
        assert_eq!(link.expires_at, at(0) + Duration::hours(72));
        assert!(check_link(Some(&link), at(1)).is_ok());
        let last_moment = link.expires_at - Duration::seconds(1);
        assert!(check_link(Some(&link), last_moment).is_ok());
        assert_eq!(
            check_link(Some(&link), link.expires_at),
            Err(LinkRefusal::Expired(link.expires_at))
        );
    }

    #[test]
    fn used_superseded_and_unknown_links_are_refused() {
        let used = LinkState {
            expires_at: at(20),
            used_at: Some(at(2)),
            superseded_at: None,
        };
        assert_eq!(
            check_link(Some(&used), at(3)),
            Err(LinkRefusal::AlreadyUsed(at(2)))
        );
        let old = LinkState {
            expires_at: at(20),
            used_at: None,
            superseded_at: Some(at(4)),
        };
        assert_eq!(
            check_link(Some(&old), at(5)),
            Err(LinkRefusal::Superseded(at(4)))
        );
        assert_eq!(check_link(None, at(5)), Err(LinkRefusal::Unknown));
    }
}
