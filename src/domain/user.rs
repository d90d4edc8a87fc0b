//! What the rules need to know of a user, an actor and an account.

use std::fmt;

/// A user's lifecycle status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserStatus {
    Pending,
    Active,
    Locked,
    Deactivated,
}

impl UserStatus {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "active" => Self::Active,
            "locked" => Self::Locked,
            "deactivated" => Self::Deactivated,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Locked => "locked",
            Self::Deactivated => "deactivated",
        }
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a user is locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockReason {
    /// Too many consecutive failed sign-ins.
    FailedLogins,
    /// No activity for the idle period.
    Idle,
    /// An administrator locked the user.
    Admin,
}

impl LockReason {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "failed_logins" => Some(Self::FailedLogins),
            "idle" => Some(Self::Idle),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailedLogins => "failed_logins",
            Self::Idle => "idle",
            Self::Admin => "admin",
        }
    }
}

/// What happens to a deactivated salesperson's contacts, by account policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactsPolicy {
    /// Contacts lose their assignee and return to the pool.
    Unassign,
    /// Contacts stay assigned to the user.
    Keep,
}

impl ContactsPolicy {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "unassign" => Some(Self::Unassign),
            "keep" => Some(Self::Keep),
            _ => None,
        }
    }
}

/// The acting or target user, as the guards see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub id: i64,
    pub account_id: i64,
    pub status: UserStatus,
    /// Higher ranks more senior.
    pub role_rank: i32,
    pub may_manage_users: bool,
}
