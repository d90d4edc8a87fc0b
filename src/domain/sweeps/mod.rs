//! The rules of the nightly sweeps, as plain functions: when a user's idle lock and password
//! expiry fall due, who is exempt from the idle lock and why, when the circuit breaker
//! holds an account, and which staged warning is due. The sweep handlers and the dry-run
//! apply them; nothing here reads the database or the clock.

pub mod warnings;

use chrono::{DateTime, Duration, Utc};

pub use warnings::{WarningKind, days_left, due_stage};

/// What the idle deadline of a user is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleSignals {
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Any sign of use the other services reported (UI, API token, mobile, integration).
    pub last_activity_at: Option<DateTime<Utc>>,
    /// The last successful sign-in.
    pub last_login_at: Option<DateTime<Utc>>,
}

impl IdleSignals {
    /// The last sign of use: the later of activity and sign-in; a user who never signed in
    /// counts from their confirmation, and one never confirmed from their creation.
    pub fn last_seen(&self) -> DateTime<Utc> {
        [self.last_activity_at, self.last_login_at]
            .into_iter()
            .flatten()
            .max()
            .or(self.confirmed_at)
            .unwrap_or(self.created_at)
    }
}

/// The idle policy of one account: its own `idle_days` or the default, and the grace of
/// new users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePolicy {
    pub idle_days: u32,
    pub new_user_grace_days: u32,
}

/// The instant from which the user is idle-locked: `idle_days` after the last sign of use,
/// and never within the grace after creation. An instant in UTC: a sweep at that instant
/// or later locks, one a minute before does not.
pub fn idle_deadline(signals: &IdleSignals, policy: &IdlePolicy) -> DateTime<Utc> {
    let idle = signals.last_seen() + Duration::days(policy.idle_days.into());
    let grace_ends = signals.created_at + Duration::days(policy.new_user_grace_days.into());
    idle.max(grace_ends)
}

/// The instant the password expires: `max_age_days` after it was set; `None` for a user
/// without a password (nothing expires).
pub fn password_deadline(
    password_changed_at: Option<DateTime<Utc>>,
    max_age_days: u32,
) -> Option<DateTime<Utc>> {
    password_changed_at.map(|changed| changed + Duration::days(max_age_days.into()))
}

/// Whether an action whose deadline is `deadline` is due at `at`.
pub fn is_due(deadline: DateTime<Utc>, at: DateTime<Utc>) -> bool {
    at >= deadline
}

/// Why a user the idle sweep would lock is left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exemption {
    /// A service or integration user (`users.is_service_account`).
    ServiceAccount,
    /// On the account's exempt list (`account_sweep_exemptions`): a break-glass admin.
    ExemptList,
    /// The last active user who may manage users in the account: locking them would leave
    /// nobody to unlock the others.
    LastUserManager,
}

impl Exemption {
    pub fn as_str(self) -> &'static str {
        match self {
            Exemption::ServiceAccount => "service_account",
            Exemption::ExemptList => "exempt_list",
            Exemption::LastUserManager => "last_user_manager",
        }
    }
}

/// What the user is, as far as the exemptions go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExemptionFacts {
    pub is_service_account: bool,
    pub on_exempt_list: bool,
    /// This user is the one [`last_manager_standing`] names.
    pub last_manager: bool,
}

/// The exemption that keeps the user from an idle lock, if any (the first that applies).
pub fn exemption(facts: &ExemptionFacts) -> Option<Exemption> {
    if facts.is_service_account {
        Some(Exemption::ServiceAccount)
    } else if facts.on_exempt_list {
        Some(Exemption::ExemptList)
    } else if facts.last_manager {
        Some(Exemption::LastUserManager)
    } else {
        None
    }
}

/// An active user who may manage users, as the last-manager rule sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Manager {
    pub user_id: i64,
    pub idle_deadline: DateTime<Utc>,
    /// Exempt by a flag or the list: stays active whatever the sweep does.
    pub otherwise_exempt: bool,
}

/// The manager the sweep must keep: when every active user who may manage users would be
/// locked at `at`, the one seen most recently (the latest deadline; the lowest id on a tie)
/// stays; when one of them stays anyway, nobody needs this exemption.
pub fn last_manager_standing(managers: &[Manager], at: DateTime<Utc>) -> Option<i64> {
    let mut search = LastManagerSearch::new(at);
    for manager in managers {
        if !search.see(manager) {
            break;
        }
    }
    search.kept()
}

/// [`last_manager_standing`] over managers read a page at a time, in any order: exact for
/// any number of them, holding one.
#[derive(Clone, Copy, Debug)]
pub struct LastManagerSearch {
    at: DateTime<Utc>,
    one_stays: bool,
    best: Option<Manager>,
}

impl LastManagerSearch {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            at,
            one_stays: false,
            best: None,
        }
    }

    /// Takes one manager into account. Returns whether more are worth reading: once one
    /// stays anyway, nobody is kept, whoever comes next.
    pub fn see(&mut self, manager: &Manager) -> bool {
        if manager.otherwise_exempt || !is_due(manager.idle_deadline, self.at) {
            self.one_stays = true;
            self.best = None;
            return false;
        }
        let better = self.best.is_none_or(|best| {
            (manager.idle_deadline, std::cmp::Reverse(manager.user_id))
                > (best.idle_deadline, std::cmp::Reverse(best.user_id))
        });
        if better {
            self.best = Some(*manager);
        }
        true
    }

    /// The manager to keep, once every manager was seen (or one that stays was).
    pub fn kept(&self) -> Option<i64> {
        if self.one_stays {
            return None;
        }
        self.best.map(|manager| manager.user_id)
    }
}

/// The idle sweep's verdict on one active user at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleVerdict {
    /// Not idle long enough: nothing, or a warning (see [`due_stage`]).
    NotYet { deadline: DateTime<Utc> },
    /// Idle, and kept by an exemption.
    Exempt {
        deadline: DateTime<Utc>,
        exemption: Exemption,
    },
    /// Idle: to be locked (unless the breaker holds the account).
    Lock { deadline: DateTime<Utc> },
}

pub fn idle_verdict(
    deadline: DateTime<Utc>,
    facts: &ExemptionFacts,
    at: DateTime<Utc>,
) -> IdleVerdict {
    if !is_due(deadline, at) {
        return IdleVerdict::NotYet { deadline };
    }
    match exemption(facts) {
        Some(exemption) => IdleVerdict::Exempt {
            deadline,
            exemption,
        },
        None => IdleVerdict::Lock { deadline },
    }
}

/// Whether locking `would_lock` of an account's `active_users` is more than `share` of them:
/// then the breaker trips and the sweep locks nobody there. 21 of 100 trips at 0.2; 20 and
/// 19 do not.
pub fn breaker_trips(would_lock: u64, active_users: u64, share: f64) -> bool {
    would_lock > 0 && (would_lock as f64) > share * active_users as f64
}

/// The share of the active users a run would lock (0 when there are none).
pub fn lock_share(would_lock: u64, active_users: u64) -> f64 {
    if active_users == 0 {
        0.0
    } else {
        would_lock as f64 / active_users as f64
    }
}

/// Whole days from `since` to `at`, rounded down: "days idle".
pub fn whole_days(since: DateTime<Utc>, at: DateTime<Utc>) -> i64 {
    (at - since).num_days()
}

#[cfg(test)]
mod tests;
