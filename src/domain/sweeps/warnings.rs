//! Staged warnings before an idle lock or a password expiry: which stage is due.

use chrono::{DateTime, Duration, Utc};

/// What a warning announces; stored in `user_warning_markers.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarningKind {
    IdleLock,
    PasswordExpiry,
}

impl WarningKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::IdleLock => "idle_lock",
            WarningKind::PasswordExpiry => "password_expiry",
        }
    }
}

/// The warning stage (days before the deadline) due at `at`, if any: the closest stage
/// whose moment (`deadline - days`) has come while the deadline has not. A stage whose
/// window passed while no sweep ran is not sent late: at 6 days before, with stages 14, 7
/// and 1, only 7 is due. A deadline that moved is another deadline, with its own stages.
pub fn due_stage(deadline: DateTime<Utc>, at: DateTime<Utc>, stages: &[u32]) -> Option<u32> {
    if at >= deadline {
        return None;
    }
    stages
        .iter()
        .copied()
        .filter(|days| *days > 0 && at >= deadline - Duration::days((*days).into()))
        .min()
}

/// Days left until `deadline`, rounded up: a warning sent 6 days 23 hours before says 7.
pub fn days_left(deadline: DateTime<Utc>, at: DateTime<Utc>) -> i64 {
    let seconds = (deadline - at).num_seconds().max(0);
    (seconds + 86_399) / 86_400
}
