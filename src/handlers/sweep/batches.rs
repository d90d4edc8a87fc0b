//! A user sweep run through the queue, in two passes over every active user of its scope
//! in id order (the order their rows were written in: each pass reads the table front to
//! back, a page of `sweeps.batch_size` at a time, whatever the accounts' sizes).
//!
//! The first pass judges every user and tallies each account: its active users, those due,
//! and the last-manager search; then the breaker's verdict on each account is settled (and
//! recorded, when it writes). The users to change or warn, gathered on the way while they
//! fit in [`CANDIDATE_PAGES_HELD`] pages (else a second pass judges every user again by the
//! settled rules and gathers them that many at a time), are sorted by account and changed in
//! batches of at most `batch_size`, each its own job transaction committed through the
//! registry (rows, audit, emails, one event per account). A batch reads its users again,
//! locked, and judges them on what it locked. Every change is guarded by the state it
//! leaves and every warning by its marker, so a rerun after a crash finishes the rest and
//! repeats nothing; the job is marked applied once both passes are done. On PostgreSQL
//! [`BATCHES_IN_FLIGHT_POSTGRES`] batches run side by side, on users no other batch holds;
//! each batch's events list the audit rows it wrote itself (`JobTx::audit_batch`).
//!
//! Memory: a tally per account (a few hundred bytes), and at most
//! [`CANDIDATE_PAGES_HELD`] pages' worth of (account, user) ids: never the users.
//! Most nights change a small share of the users, and one pass does.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::{AccountRules, Action, Breaker, Counts, Scope, SweepKind, signals};
use crate::config::SweepSettings;
use crate::domain::sweeps::{self, LastManagerSearch};
use crate::handlers::outbox::{EmailTo, record_emails};
use crate::handlers::registry::{Runtime, commit};
use crate::handlers::{JobError, JobTx, Outcome};
use crate::mail::render::Template;
use crate::store::audit::{AuditStamp, BatchStamp, Changed};
use crate::store::sweeps::{
    self as store, AccountPeople, Hold, SweepAccount, SweepUser, UserFacts,
};
use crate::store::{Dialect, StoreError, ledger};

/// Pages' worth of users to change or warn gathered before they are sorted by account and
/// changed: the more, the fewer batches (and events) each account is spread over.
const CANDIDATE_PAGES_HELD: usize = 100;

/// Batches in their own transactions at once on PostgreSQL. One batch at a time left a
/// core idle: the database worked while the service judged, rendered and pushed, and the
/// other way round. Two keep both busy; their users are distinct, so they wait on no row of
/// each other's. SQLite has one writer: one at a time there.
const BATCHES_IN_FLIGHT_POSTGRES: usize = 2;

/// What a run did, for its outcome and log line.
#[derive(Debug, Default)]
struct Totals {
    users: u64,
    changed: u64,
    warnings: u64,
    held: Vec<i64>,
}

/// Runs sweep `kind` of job `name` over `scope`.
pub async fn run(
    rt: &Runtime<'_>,
    name: &'static str,
    kind: SweepKind,
    scope: &Scope,
) -> Result<Outcome, JobError> {
    let mut tx = rt.store.begin_read().await?;
    let applied = ledger::already_applied(&mut tx, rt.job_id).await?;
    tx.rollback().await?;
    if applied {
        return Ok(Outcome::AlreadyApplied);
    }
    let sweep = Sweep {
        rt,
        name,
        kind,
        scope,
        settings: &rt.settings.sweeps,
        started: Instant::now(),
    };
    let mut totals = Totals::default();
    let (mut accounts, gathered) = sweep.tally(&mut totals).await?;
    sweep.settle(&mut accounts, &mut totals).await?;
    match gathered {
        Some(wanted) => {
            let candidates: Vec<(i64, i64)> = wanted
                .into_iter()
                .filter(|(account_id, _, action)| {
                    accounts
                        .get(account_id)
                        .is_some_and(|account| action.is_taken(account.blocked))
                })
                .map(|(account_id, user_id, _)| (account_id, user_id))
                .collect();
            sweep
                .apply_sorted(&accounts, candidates, &mut totals)
                .await?;
        }
        None => sweep.change(&accounts, &mut totals).await?,
    }
    let mut tx = rt.store.begin().await?;
    ledger::mark_applied(&mut tx, rt.job_id, name, rt.clock.now()).await?;
    tx.commit().await?;
    let summary = format!(
        "{}: {} accounts, {} users changed, {} warnings sent, held accounts: {:?}",
        kind.as_str(),
        accounts.len(),
        totals.changed,
        totals.warnings,
        totals.held
    );
    tracing::info!(%summary, "sweep finished");
    super::super::sweep_result::report(rt, name, totals.changed, &summary).await?;
    Ok(
        if totals.changed + totals.warnings > 0 || !totals.held.is_empty() {
            Outcome::Applied
        } else {
            Outcome::NothingToDo(summary)
        },
    )
}

/// One run of a user sweep.
struct Sweep<'r, 'a> {
    rt: &'r Runtime<'a>,
    name: &'static str,
    kind: SweepKind,
    scope: &'r Scope,
    settings: &'r SweepSettings,
    started: Instant,
}

/// A page of active users being read ([`Sweep::read_ahead`]).
struct PageAhead(tokio::task::JoinHandle<Result<Vec<UserFacts>, StoreError>>);

impl PageAhead {
    async fn read(self) -> Result<Vec<UserFacts>, JobError> {
        match self.0.await {
            Ok(page) => Ok(page?),
            Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
            // Cancelled: the runtime is shutting down; the job is retried after a restart.
            Err(cancelled) => Err(JobError::Store(StoreError::Database(sqlx::Error::Io(
                std::io::Error::other(cancelled.to_string()),
            )))),
        }
    }
}

/// An account as the first pass leaves it: its rules (the last manager settled after the
/// pass), its people, its tally, and whether the breaker stops its changes.
struct Account {
    account: SweepAccount,
    rules: AccountRules,
    people: AccountPeople,
    held: bool,
    counts: Counts,
    managers: LastManagerSearch,
    blocked: bool,
}

impl Sweep<'_, '_> {
    fn batch(&self) -> i64 {
        i64::from(self.settings.batch_size)
    }

    /// Starts reading the page of active users after `after_id`, on a task of its own: the
    /// walk judges one page while the database reads the next, instead of each waiting for
    /// the other.
    fn read_ahead(&self, after_id: i64) -> PageAhead {
        let store = self.rt.store.clone();
        let (only, limit) = (self.scope.account_id, self.batch());
        PageAhead(tokio::spawn(async move {
            let mut tx = store.begin_read().await?;
            let page = store::active_user_facts_after(&mut tx, after_id, only, limit).await?;
            tx.rollback().await?;
            Ok(page)
        }))
    }

    /// The page `ahead` reads, and the read of the one after it started (`None`: this page
    /// is the last).
    async fn next_page(
        &self,
        ahead: PageAhead,
    ) -> Result<(Vec<UserFacts>, Option<PageAhead>), JobError> {
        let page = ahead.read().await?;
        let following = match page.last() {
            Some(last) if page.len() as i64 == self.batch() => Some(self.read_ahead(last.id)),
            _ => None,
        };
        Ok((page, following))
    }

    /// Loads the accounts of `page` not seen before: their rules, people and holds.
    async fn load_accounts(
        &self,
        accounts: &mut HashMap<i64, Account>,
        page: &[UserFacts],
    ) -> Result<(), JobError> {
        let mut new: Vec<i64> = page
            .iter()
            .map(|user| user.account_id)
            .filter(|id| !accounts.contains_key(id))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        new.sort_unstable();
        new.dedup();
        let mut tx = self.rt.store.begin_read().await?;
        let rows = store::accounts_of(&mut tx, &new).await?;
        let mut people = store::people_of(&mut tx, &new).await?;
        let held = if self.kind == SweepKind::LockIdle {
            store::held_accounts(&mut tx, self.kind.as_str(), &new).await?
        } else {
            Vec::new()
        };
        tx.rollback().await?;
        for account in rows {
            let id = account.account.id;
            accounts.insert(
                id,
                Account {
                    rules: AccountRules::new(self.kind, self.settings, &account),
                    people: people.remove(&id).unwrap_or_default(),
                    held: held.contains(&id),
                    counts: Counts::default(),
                    managers: LastManagerSearch::new(self.scope.at),
                    blocked: false,
                    account,
                },
            );
        }
        Ok(())
    }

    /// How many users to change or warn are gathered at most before they are changed.
    fn candidates_held(&self) -> usize {
        self.settings.batch_size as usize * CANDIDATE_PAGES_HELD
    }

    /// The first pass: every account's tally and last-manager search, and the users it
    /// would change or warn, `(account, user, action)`, while they fit in
    /// [`Sweep::candidates_held`] (`None` past that: the second pass finds them again).
    async fn tally(
        &self,
        totals: &mut Totals,
    ) -> Result<(HashMap<i64, Account>, Option<Vec<(i64, i64, Action)>>), JobError> {
        let mut wanted = Some(Vec::new());
        let mut accounts = HashMap::new();
        let mut ahead = Some(self.read_ahead(0));
        while let Some(reading) = ahead {
            let (mut page, following) = self.next_page(reading).await?;
            ahead = following;
            self.load_accounts(&mut accounts, &page).await?;
            for user in &mut page {
                let Some(account) = accounts.get_mut(&user.account_id) else {
                    continue;
                };
                account.people.complete(user);
                // The last manager is not known yet: due managers count as due, and the
                // one the search keeps is taken off once the pass is done.
                let (_, action) = account.rules.judge(user, self.scope.at);
                account.counts.active_users += 1;
                account.counts.would_act += u64::from(action == Action::Act);
                // The breaker's verdict is not known yet either: kept as if it let all pass.
                if let (Some(list), true) = (&mut wanted, action.is_taken(false)) {
                    list.push((user.account_id, user.id, action));
                    if list.len() > self.candidates_held() {
                        wanted = None;
                    }
                }
                if self.kind == SweepKind::LockIdle && user.may_manage_users {
                    let manager = account.rules.manager(user);
                    account.managers.see(&manager);
                }
            }
            totals.users += page.len() as u64;
        }
        self.log_progress("tallied", totals);
        Ok((accounts, wanted))
    }

    /// Settles each account's last manager and breaker verdict, recording the verdicts
    /// that write.
    async fn settle(
        &self,
        accounts: &mut HashMap<i64, Account>,
        totals: &mut Totals,
    ) -> Result<(), JobError> {
        let mut ids: Vec<i64> = accounts.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(account) = accounts.get_mut(&id) else {
                continue;
            };
            if self.kind == SweepKind::LockIdle {
                let kept = account.managers.kept();
                account.rules.last_manager = kept;
                // The manager kept was counted due: it is exempt.
                account.counts.would_act -= u64::from(kept.is_some());
            }
            let breaker = Breaker::verdict(
                self.kind,
                self.settings,
                self.scope,
                id,
                account.held,
                account.counts,
            );
            account.blocked = breaker.blocks();
            self.record_breaker(id, account.counts, breaker, totals)
                .await?;
        }
        Ok(())
    }

    /// The second pass: every user judged by the settled rules; those to change or warn
    /// gathered, then changed in batches sorted by account.
    async fn change(
        &self,
        accounts: &HashMap<i64, Account>,
        totals: &mut Totals,
    ) -> Result<(), JobError> {
        let mut candidates: Vec<(i64, i64)> = Vec::new();
        totals.users = 0;
        let mut ahead = Some(self.read_ahead(0));
        while let Some(reading) = ahead {
            let (mut page, following) = self.next_page(reading).await?;
            ahead = following;
            for user in &mut page {
                // An account created since the first pass is left to the next run.
                let Some(account) = accounts.get(&user.account_id) else {
                    continue;
                };
                account.people.complete(user);
                let (_, action) = account.rules.judge(user, self.scope.at);
                if action.is_taken(account.blocked) {
                    candidates.push((user.account_id, user.id));
                }
            }
            totals.users += page.len() as u64;
            if candidates.len() >= self.candidates_held() || ahead.is_none() {
                let gathered = std::mem::take(&mut candidates);
                self.apply_sorted(accounts, gathered, totals).await?;
            }
        }
        Ok(())
    }

    /// Changes `candidates` `(account, user)` sorted by account, in batches of at most
    /// `batch_size`: an account's users in as few batches (and events) as they fill.
    async fn apply_sorted(
        &self,
        accounts: &HashMap<i64, Account>,
        mut candidates: Vec<(i64, i64)>,
        totals: &mut Totals,
    ) -> Result<(), JobError> {
        candidates.sort_unstable();
        let in_flight = match self.rt.store.dialect() {
            Dialect::Postgres => BATCHES_IN_FLIGHT_POSTGRES,
            Dialect::Sqlite => 1,
        };
        let mut batches = candidates.chunks(self.settings.batch_size as usize);
        let mut applying = FuturesUnordered::new();
        let mut failed = None;
        loop {
            // After a failure no batch starts, and those under way finish: what they did
            // is kept, and the retry has less left to do.
            while failed.is_none() && applying.len() < in_flight {
                let Some(batch) = batches.next() else { break };
                applying.push(self.apply_batch(accounts, batch));
            }
            let Some(applied) = applying.next().await else {
                break;
            };
            match applied {
                Ok((changed, warned)) => {
                    totals.changed += changed;
                    totals.warnings += warned;
                }
                Err(error) => {
                    failed.get_or_insert(error);
                }
            }
        }
        if let Some(error) = failed {
            return Err(error);
        }
        self.log_progress("changed", totals);
        Ok(())
    }

    /// Records a verdict that writes (a hold, a confirmation) in a transaction of its own:
    /// an account left clear, the most, costs the sweep no commit.
    async fn record_breaker(
        &self,
        account_id: i64,
        counts: Counts,
        breaker: Breaker,
        totals: &mut Totals,
    ) -> Result<(), JobError> {
        if matches!(breaker, Breaker::Trips | Breaker::Confirmed) {
            record_verdict(
                self.rt,
                self.name,
                self.kind,
                self.settings,
                account_id,
                counts,
                breaker,
            )
            .await?;
        } else if breaker == Breaker::Held {
            tracing::warn!(account_id, "account held by the breaker: nobody locked");
        }
        if breaker.blocks() {
            totals.held.push(account_id);
        }
        Ok(())
    }

    fn log_progress(&self, pass: &'static str, totals: &Totals) {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        tracing::info!(
            sweep = self.kind.as_str(),
            pass,
            rows_done = totals.users,
            changed = totals.changed,
            warned = totals.warnings,
            rows_per_second = (totals.users as f64 / seconds).round(),
            "sweep progress"
        );
    }

    /// Changes a batch of users of the judged accounts in one job transaction: each is
    /// read again, locked, and judged on what was locked (a user active since the page was
    /// read is left alone), then the batch's markers, changes and emails are written, each
    /// in one statement (PostgreSQL), not one round trip per user.
    async fn apply_batch(
        &self,
        by_account: &HashMap<i64, Account>,
        candidates: &[(i64, i64)],
    ) -> Result<(u64, u64), JobError> {
        if candidates.is_empty() {
            return Ok((0, 0));
        }
        let at = self.scope.at;
        let ctx = self.rt.context();
        let ids: Vec<i64> = candidates.iter().map(|(_, user_id)| *user_id).collect();
        let mut tx = JobTx::begin_batch(self.rt.store, self.rt.job_id).await?;
        let locked = store::active_users_locked(&mut tx, &ids).await?;
        let stamp = BatchStamp {
            actor: "system".into(),
            job_id: self.rt.job_id,
            at: ctx.clock.now(),
        };
        let mut due = Vec::new();
        let mut warnings = Vec::new();
        for user in &locked {
            let Some(account) = by_account.get(&user.user.account_id) else {
                continue;
            };
            let mut facts = user.facts();
            account.people.complete(&mut facts);
            match account.rules.judge(&facts, at) {
                (Some(deadline), Action::Act) if !account.blocked => {
                    let detail = serde_json::json!({
                        "sweep": self.kind.as_str(),
                        "deadline": deadline,
                        "at": at,
                    });
                    due.push(Changed {
                        account_id: user.user.account_id,
                        entity_id: user.user.id,
                        detail: detail.to_string(),
                    });
                }
                (Some(deadline), Action::Warn(stage_days)) => warnings.push(store::WarningDue {
                    user_id: user.user.id,
                    deadline,
                    stage_days,
                }),
                _ => {}
            }
        }
        let warned =
            store::mark_warnings(&mut tx, self.kind.warning().as_str(), &warnings, stamp.at)
                .await?;
        let (changed, action) = match self.kind {
            SweepKind::LockIdle => (store::lock_idle(&mut tx, stamp.at, &due).await?, "locked"),
            SweepKind::ExpirePasswords => (
                store::require_password_change(&mut tx, stamp.at, &due).await?,
                "password_expired",
            ),
        };
        tx.audit_batch(&stamp, "user", action, &changed).await?;
        let users: HashMap<i64, &SweepUser> =
            locked.iter().map(|user| (user.user.id, user)).collect();
        let mut emails = Vec::with_capacity(warned.len() + changed.len());
        for warning in &warned {
            let Some(user) = users.get(&warning.user_id) else {
                continue;
            };
            let account = &by_account[&user.user.account_id];
            let (template, variables) = warning_email(&account.rules, user, warning.deadline, at);
            emails.push(EmailTo {
                account: &account.account.account,
                user: &user.user,
                template,
                variables,
            });
        }
        for change in &changed {
            let Some(user) = users.get(&change.entity_id) else {
                continue;
            };
            let account = &by_account[&change.account_id];
            let (template, variables) = match self.kind {
                SweepKind::LockIdle => (
                    Template::LockedIdle,
                    serde_json::json!({
                        "idle_days": sweeps::whole_days(signals(&user.facts()).last_seen(), at),
                        "locked_at": account.rules.local(stamp.at),
                    }),
                ),
                SweepKind::ExpirePasswords => (Template::PasswordExpired, serde_json::json!({})),
            };
            emails.push(EmailTo {
                account: &account.account.account,
                user: &user.user,
                template,
                variables,
            });
        }
        record_emails(&ctx, &mut tx, emails).await?;
        commit(self.rt, tx, self.name).await?;
        Ok((changed.len() as u64, warned.len() as u64))
    }
}

/// Records the breaker's verdict on an account that writes: the hold of a run that trips
/// (audited once, however many runs hold at once), or the confirmation of this run.
async fn record_verdict(
    rt: &Runtime<'_>,
    name: &'static str,
    kind: SweepKind,
    settings: &SweepSettings,
    account_id: i64,
    counts: Counts,
    breaker: Breaker,
) -> Result<(), JobError> {
    let mut tx = JobTx::begin_batch(rt.store, rt.job_id).await?;
    let stamp = rt.context().audit_stamp(account_id, "system");
    match breaker {
        Breaker::Trips => {
            let hold = Hold {
                account_id,
                sweep: kind.as_str().to_string(),
                held_at: stamp.at,
                share: sweeps::lock_share(counts.would_act, counts.active_users),
                would_lock: counts.would_act as i64,
                active_users: counts.active_users as i64,
            };
            // A run racing this one (a redelivery) may have held it first: one audit row.
            if store::hold(&mut tx, &hold).await? {
                let detail = serde_json::json!({
                    "sweep": kind.as_str(), "would_lock": hold.would_lock,
                    "active_users": hold.active_users, "share": hold.share,
                    "breaker_share": settings.breaker_share,
                });
                audit_account(&mut tx, &stamp, "sweep_held", detail).await?;
            }
            tracing::error!(
                account_id,
                would_lock = hold.would_lock,
                active_users = hold.active_users,
                share = hold.share,
                "circuit breaker: the sweep would lock more than {} of the account's active \
                 users; nobody locked, account held until confirmed \
                 (lifecycle sweep lock-idle --account {account_id} --confirm)",
                settings.breaker_share
            );
        }
        Breaker::Confirmed => {
            if store::confirm_hold(
                &mut tx,
                account_id,
                kind.as_str(),
                stamp.at,
                "administrator",
            )
            .await?
            {
                let detail = serde_json::json!({ "sweep": kind.as_str() });
                audit_account(&mut tx, &stamp, "sweep_hold_confirmed", detail).await?;
            }
        }
        // Neither writes: the caller takes no transaction for them.
        Breaker::Held | Breaker::Clear => {}
    }
    commit(rt, tx, name).await
}

/// Audits a verdict on the account of `stamp` in the batch `tx`.
async fn audit_account(
    tx: &mut JobTx,
    stamp: &AuditStamp,
    action: &'static str,
    detail: serde_json::Value,
) -> Result<(), JobError> {
    let changed = Changed {
        account_id: stamp.account_id,
        entity_id: stamp.account_id,
        detail: detail.to_string(),
    };
    tx.audit_batch(&stamp.across_accounts(), "account", action, &[changed])
        .await?;
    Ok(())
}

fn warning_email(
    rules: &AccountRules,
    user: &SweepUser,
    deadline: DateTime<Utc>,
    at: DateTime<Utc>,
) -> (Template, serde_json::Value) {
    let action_date = rules.local(deadline);
    let days_left = sweeps::days_left(deadline, at);
    match rules.kind {
        SweepKind::LockIdle => (
            Template::IdleLockWarning,
            serde_json::json!({
                "idle_days": sweeps::whole_days(signals(&user.facts()).last_seen(), at),
                "action_date": action_date,
                "days_left": days_left,
            }),
        ),
        SweepKind::ExpirePasswords => (
            Template::PasswordExpiryWarning,
            serde_json::json!({ "action_date": action_date, "days_left": days_left }),
        ),
    }
}
