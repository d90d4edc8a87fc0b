//! Failed sign-ins and locks: when a failure locks, and what may lift a lock.

use lifecycle_jobs::UnlockVia;

use super::user::LockReason;

/// The account's own limit of consecutive failed sign-ins, else the configured default.
pub fn failed_login_limit(account_limit: Option<i32>, default_limit: u32) -> u32 {
    match account_limit {
        Some(limit) if limit > 0 => limit as u32,
        _ => default_limit.max(1),
    }
}

/// "More than `limit` consecutive failures lock": with 5, the sixth failure locks.
pub fn failure_locks(consecutive_failures: i32, limit: u32) -> bool {
    i64::from(consecutive_failures) > i64::from(limit)
}

/// Why a lock cannot be lifted this way.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnlockRefusal {
    #[error(
        "a password reset lifts only a lock for failed sign-ins; this user is locked ({reason}): an administrator must unlock"
    )]
    PasswordResetCannotLift { reason: &'static str },
}

/// What unlocking does to the idle clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unlock {
    /// A user locked for inactivity gets a fresh activity clock, else the next sweep would
    /// lock them again at once.
    pub fresh_activity_clock: bool,
}

/// Whether `via` may lift a lock for `reason` (`None`: a lock without a recorded reason).
pub fn unlock(reason: Option<LockReason>, via: UnlockVia) -> Result<Unlock, UnlockRefusal> {
    match (via, reason) {
        (UnlockVia::PasswordReset, Some(LockReason::FailedLogins)) | (UnlockVia::Admin, _) => {
            Ok(Unlock {
                fresh_activity_clock: reason == Some(LockReason::Idle),
            })
        }
        (UnlockVia::PasswordReset, other) => Err(UnlockRefusal::PasswordResetCannotLift {
            reason: other.map_or("without a reason", LockReason::as_str),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_past_the_limit_locks() {
        assert!(!failure_locks(5, 5));
        assert!(failure_locks(6, 5));
        assert!(!failure_locks(1, 1));
        assert!(failure_locks(2, 1));
        assert!(!failure_locks(0, 5));
    }

    #[test]
    fn the_account_limit_wins_over_the_default() {
        assert_eq!(failed_login_limit(None, 5), 5);
        assert_eq!(failed_login_limit(Some(3), 5), 3);
        assert_eq!(failed_login_limit(Some(0), 5), 5);
        assert_eq!(failed_login_limit(None, 0), 1);
    }

    #[test]
    fn an_admin_lifts_any_lock_and_a_password_reset_only_failed_logins() {
        use LockReason::*;
        assert_eq!(
            unlock(Some(Idle), UnlockVia::Admin),
            Ok(Unlock {
                fresh_activity_clock: true
            })
        );
        for reason in [Some(FailedLogins), Some(Admin), None] {
            assert_eq!(
                unlock(reason, UnlockVia::Admin),
                Ok(Unlock {
                    fresh_activity_clock: false
                })
            );
        }
        assert!(unlock(Some(FailedLogins), UnlockVia::PasswordReset).is_ok());
        for reason in [Some(Idle), Some(Admin), None] {
            let refusal = unlock(reason, UnlockVia::PasswordReset).unwrap_err();
            assert!(refusal.to_string().contains("administrator must unlock"));
        }
    }
}
