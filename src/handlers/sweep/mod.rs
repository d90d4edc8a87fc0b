//! What the two user sweeps (LockIdleUsers, ExpirePasswords) share: judging an active user
//! by the rules of `domain::sweeps`, the account's policies, the pages of users. `batches`
//! applies the judgments in short transactions; `preview` prints them (`--dry-run`).

pub mod batches;
pub mod preview;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::SweepSettings;
use crate::domain::sweeps::{
    self, ExemptionFacts, IdlePolicy, IdleSignals, IdleVerdict, LastManagerSearch, Manager,
    WarningKind,
};
use crate::store::sweeps::{SweepAccount, SweepUser, UserFacts};
use crate::store::{StoreError, Tx, sweeps as store};

pub use batches::run;

/// Which user sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepKind {
    LockIdle,
    ExpirePasswords,
}

impl SweepKind {
    /// Its name in `sweep_holds.sweep` and in the dry-run.
    pub fn as_str(self) -> &'static str {
        match self {
            SweepKind::LockIdle => "lock_idle",
            SweepKind::ExpirePasswords => "expire_passwords",
        }
    }

    fn warning(self) -> WarningKind {
        match self {
            SweepKind::LockIdle => WarningKind::IdleLock,
            SweepKind::ExpirePasswords => WarningKind::PasswordExpiry,
        }
    }
}

/// A run's reach: the instant it judges by, one account or all (0), the accounts confirmed.
#[derive(Clone, Debug)]
pub struct Scope {
    pub at: DateTime<Utc>,
    pub account_id: i64,
    pub confirm_accounts: Vec<i64>,
}

/// What the sweep does to one active user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Lock, or require a new password.
    Act,
    /// Send the warning of this stage (days before the deadline).
    Warn(u32),
    /// Due, but exempt (idle lock only).
    Exempt(sweeps::Exemption),
    Nothing,
}

impl Action {
    /// Whether a run writes anything for this user (a change, a warning), the account's
    /// breaker `blocked` or not: a blocked account is warned, not changed.
    pub fn is_taken(self, blocked: bool) -> bool {
        match self {
            Action::Act => !blocked,
            Action::Warn(_) => true,
            Action::Exempt(_) | Action::Nothing => false,
        }
    }
}

/// An account's rules for one run.
pub struct AccountRules {
    pub kind: SweepKind,
    pub time_zone: Tz,
    pub idle: IdlePolicy,
    pub password_max_age_days: u32,
    pub warning_days: Vec<u32>,
    /// The manager the last-manager exemption keeps, if it keeps one.
    pub last_manager: Option<i64>,
}

/// Managers read per page for the last-manager rule (an account usually has a handful;
/// every one is read, a page at a time, until one is seen to stay).
const MANAGERS_PAGE: i64 = 1_000;

impl AccountRules {
    /// The account's rules, without the last-manager exemption: see [`AccountRules::load`]
    /// and [`AccountRules::keep_last_manager_among`].
    pub fn new(kind: SweepKind, settings: &SweepSettings, account: &SweepAccount) -> Self {
        let positive =
            |days: Option<i32>| days.and_then(|d| u32::try_from(d).ok()).filter(|d| *d > 0);
        AccountRules {
            kind,
            time_zone: account.account.time_zone(),
            idle: IdlePolicy {
                idle_days: positive(account.idle_days).unwrap_or(settings.idle_days),
                new_user_grace_days: settings.new_user_grace_days,
            },
            password_max_age_days: positive(account.password_max_age_days)
                .unwrap_or(settings.password_max_age_days),
            warning_days: settings.warning_days.clone(),
            last_manager: None,
        }
    }

    /// The account's rules, its managers read from the database a page at a time.
    pub async fn load(
        tx: &mut Tx,
        kind: SweepKind,
        settings: &SweepSettings,
        account: &SweepAccount,
        at: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let mut rules = AccountRules::new(kind, settings, account);
        if kind == SweepKind::LockIdle {
            rules.last_manager = rules.last_manager(tx, account.account.id, at).await?;
        }
        Ok(rules)
    }

    /// The user as the last-manager rule sees them (if they may manage users).
    pub fn manager(&self, user: &UserFacts) -> Manager {
        Manager {
            user_id: user.id,
            idle_deadline: self.idle_deadline(user),
            otherwise_exempt: user.is_service_account || user.on_exempt_list,
        }
    }

    /// The manager the last-manager exemption keeps: every active manager of the account
    /// read, a page at a time, until one is seen to stay anyway.
    async fn last_manager(
        &self,
        tx: &mut Tx,
        account_id: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let mut search = LastManagerSearch::new(at);
        let mut after_id = 0;
        loop {
            let page = store::active_user_managers(tx, account_id, after_id, MANAGERS_PAGE).await?;
            for user in &page {
                if !search.see(&self.manager(&user.facts())) {
                    return Ok(search.kept());
                }
            }
            match page.last() {
                Some(last) if page.len() as i64 == MANAGERS_PAGE => after_id = last.user.id,
                _ => return Ok(search.kept()),
            }
        }
    }

    pub fn idle_deadline(&self, user: &UserFacts) -> DateTime<Utc> {
        sweeps::idle_deadline(&signals(user), &self.idle)
    }

    /// The user's deadline for this sweep (`None`: nothing ever falls due) and what to do.
    pub fn judge(&self, user: &UserFacts, at: DateTime<Utc>) -> (Option<DateTime<Utc>>, Action) {
        match self.kind {
            SweepKind::LockIdle => {
                let deadline = self.idle_deadline(user);
                let facts = ExemptionFacts {
                    is_service_account: user.is_service_account,
                    on_exempt_list: user.on_exempt_list,
                    last_manager: self.last_manager == Some(user.id),
                };
                let action = match sweeps::idle_verdict(deadline, &facts, at) {
                    IdleVerdict::Lock { .. } => Action::Act,
                    IdleVerdict::Exempt { exemption, .. } => Action::Exempt(exemption),
                    // An exempt user is never locked: nothing to warn about.
                    IdleVerdict::NotYet { .. } if sweeps::exemption(&facts).is_some() => {
                        Action::Nothing
                    }
                    IdleVerdict::NotYet { .. } => self.warning(deadline, at),
                };
                (Some(deadline), action)
            }
            SweepKind::ExpirePasswords => {
                let Some(deadline) =
                    sweeps::password_deadline(user.password_changed_at, self.password_max_age_days)
                else {
                    return (None, Action::Nothing);
                };
                let action = if user.must_change_password {
                    Action::Nothing
                } else if sweeps::is_due(deadline, at) {
                    Action::Act
                } else {
                    self.warning(deadline, at)
                };
                (Some(deadline), action)
            }
        }
    }

    fn warning(&self, deadline: DateTime<Utc>, at: DateTime<Utc>) -> Action {
        sweeps::due_stage(deadline, at, &self.warning_days).map_or(Action::Nothing, Action::Warn)
    }

    /// An instant as the account's people read it: `2026-06-30 12:00 CEST`.
    pub fn local(&self, instant: DateTime<Utc>) -> String {
        instant
            .with_timezone(&self.time_zone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    }
}

pub fn signals(user: &UserFacts) -> IdleSignals {
    IdleSignals {
        created_at: user.created_at,
        confirmed_at: user.confirmed_at,
        last_activity_at: user.last_activity_at,
        last_login_at: user.last_login_at,
    }
}

/// Where the breaker leaves an account in this run (idle lock only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Breaker {
    /// Locks proceed.
    Clear,
    /// This run would lock more than the share: nobody is locked, the account is held.
    Trips,
    /// Held by an earlier run, not confirmed: nobody is locked.
    Held,
    /// Held or tripping, and confirmed in this run: locks proceed.
    Confirmed,
}

impl Breaker {
    pub fn blocks(self) -> bool {
        matches!(self, Breaker::Trips | Breaker::Held)
    }

    /// The verdict of sweep `kind` on account `account_id` of `scope`, already `held` (an
    /// open hold) or not, from the first pass's `counts`: only the idle lock has a breaker.
    pub fn verdict(
        kind: SweepKind,
        settings: &SweepSettings,
        scope: &Scope,
        account_id: i64,
        held: bool,
        counts: Counts,
    ) -> Self {
        if kind != SweepKind::LockIdle {
            return Breaker::Clear;
        }
        let trips = sweeps::breaker_trips(
            counts.would_act,
            counts.active_users,
            settings.breaker_share,
        );
        match (held || trips, scope.confirm_accounts.contains(&account_id)) {
            (false, _) => Breaker::Clear,
            (true, true) => Breaker::Confirmed,
            (true, false) if held => Breaker::Held,
            (true, false) => Breaker::Trips,
        }
    }
}

/// What the first, read-only pass over an account found.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub active_users: u64,
    pub would_act: u64,
}

/// Judges every active user of the account at `at`, a page of `batch` at a time in short
/// read transactions, handing each to `seen`; returns the counts.
pub async fn judge_all(
    store_handle: &crate::store::Store,
    rules: &AccountRules,
    account_id: i64,
    at: DateTime<Utc>,
    batch: i64,
    mut seen: impl FnMut(&SweepUser, Option<DateTime<Utc>>, Action),
) -> Result<Counts, StoreError> {
    let mut counts = Counts::default();
    let mut after = 0;
    loop {
        let mut tx = store_handle.begin_read().await?;
        let page = store::active_users_after(&mut tx, account_id, after, batch).await?;
        tx.rollback().await?;
        for user in &page {
            let (deadline, action) = rules.judge(&user.facts(), at);
            counts.active_users += 1;
            counts.would_act += u64::from(action == Action::Act);
            seen(user, deadline, action);
        }
        match page.last() {
            Some(last) if page.len() as i64 == batch => after = last.user.id,
            _ => return Ok(counts),
        }
    }
}

/// The breaker's verdict on an account, from the first pass's counts, the open hold and
/// the confirmations of this run.
pub async fn breaker(
    tx: &mut Tx,
    rules: &AccountRules,
    settings: &SweepSettings,
    account_id: i64,
    scope: &Scope,
    counts: Counts,
) -> Result<Breaker, StoreError> {
    let held = rules.kind == SweepKind::LockIdle
        && store::open_hold(tx, account_id, rules.kind.as_str())
            .await?
            .is_some();
    Ok(Breaker::verdict(
        rules.kind, settings, scope, account_id, held, counts,
    ))
}

/// Accounts in the scope, in id order, a page at a time.
pub async fn accounts_page(
    store_handle: &crate::store::Store,
    scope: &Scope,
    after_id: i64,
) -> Result<Vec<SweepAccount>, StoreError> {
    let mut tx = store_handle.begin_read().await?;
    let accounts = store::accounts_after(&mut tx, after_id, scope.account_id, 100).await?;
    tx.rollback().await?;
    Ok(accounts)
}

impl Scope {
    /// The scope of a sweep job's payload: `at` defaults to when the service recorded the
    /// job, so a rerun judges as the first attempt did.
    pub fn of(
        rt: &crate::handlers::Runtime<'_>,
        at: Option<DateTime<Utc>>,
        account_id: Option<i64>,
        confirm_accounts: &[i64],
    ) -> Self {
        Scope {
            at: at.unwrap_or_else(|| rt.context().enqueued_at_or_now()),
            account_id: account_id.unwrap_or(0),
            confirm_accounts: confirm_accounts.to_vec(),
        }
    }
}
