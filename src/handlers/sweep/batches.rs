//! A user sweep run through the queue. It walks every active user of its scope in
//! (account, id) order, a page of `sweeps.batch_size` at a time, and judges the accounts it
//! has read whole together: their breaker verdicts from their own users, then the changes
//! in batches of at most `batch_size` users across accounts, each its own job transaction
//! committed through the registry (rows, audit, emails, one event per account). A batch
//! reads its users again, locked, and judges them on what it locked. Every change is
//! guarded by the state it leaves and every warning by its marker, so a rerun after a crash
//! finishes the rest and repeats nothing; the job is marked applied once the walk is done.
//!
//! An account with more active users than [`ACCOUNT_PAGES_HELD`] pages is not held in
//! memory: it is swept in passes of its own (one to count for the breaker, then its pages).

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::{AccountRules, Action, Breaker, Counts, Scope, SweepKind, signals};
use crate::config::SweepSettings;
use crate::domain::sweeps;
use crate::handlers::outbox::{EmailTo, record_emails};
use crate::handlers::registry::{Runtime, commit};
use crate::handlers::{JobError, JobTx, Outcome};
use crate::mail::render::Template;
use crate::store::audit::BatchStamp;
use crate::store::sweeps::{self as store, DueUser, Hold, SweepAccount, SweepUser, UserCursor};
use crate::store::{audit, ledger};

/// Pages of users of accounts read whole that are held before they are judged together,
/// and the size past which one account is swept in passes of its own instead: memory stays
/// bounded by about twice this many users, however many accounts and users there are.
const ACCOUNT_PAGES_HELD: usize = 10;

/// What a run did, for its outcome and log line.
#[derive(Debug, Default)]
struct Totals {
    accounts: u64,
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
    sweep.walk(&mut totals).await?;
    let mut tx = rt.store.begin().await?;
    ledger::mark_applied(&mut tx, rt.job_id, name, rt.clock.now()).await?;
    tx.commit().await?;
    let summary = format!(
        "{}: {} accounts, {} users changed, {} warnings sent, held accounts: {:?}",
        kind.as_str(),
        totals.accounts,
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

/// An account judged for this run: its rules and whether the breaker stops its changes.
struct Judged<'s> {
    account: &'s SweepAccount,
    rules: AccountRules,
    blocked: bool,
}

impl Sweep<'_, '_> {
    fn batch(&self) -> i64 {
        i64::from(self.settings.batch_size)
    }

    /// Walks the scope's active users a page at a time, sweeping the accounts read whole.
    async fn walk(&self, totals: &mut Totals) -> Result<(), JobError> {
        let batch = self.batch();
        let held_at_most = self.settings.batch_size as usize * ACCOUNT_PAGES_HELD;
        let (mut after, last_account) = match self.scope.account_id {
            0 => (UserCursor::default(), i64::MAX),
            only => (
                UserCursor {
                    account_id: only,
                    user_id: 0,
                },
                only,
            ),
        };
        // Users of accounts read whole, waiting to be judged; and of the account the last
        // page ended in, which may go on.
        let mut whole: Vec<SweepUser> = Vec::new();
        let mut trailing: Vec<SweepUser> = Vec::new();
        loop {
            let mut tx = self.rt.store.begin_read().await?;
            let page = store::active_users_across(&mut tx, after, last_account, batch).await?;
            tx.rollback().await?;
            let finished = (page.len() as i64) < batch;
            if let Some(last) = page.last() {
                after = UserCursor {
                    account_id: last.user.account_id,
                    user_id: last.user.id,
                };
            }
            for user in page {
                if trailing
                    .last()
                    .is_some_and(|seen| seen.user.account_id != user.user.account_id)
                {
                    whole.append(&mut trailing);
                }
                trailing.push(user);
            }
            if finished {
                whole.append(&mut trailing);
            } else if trailing.len() > held_at_most {
                let account_id = trailing[0].user.account_id;
                trailing.clear();
                self.sweep_big_account(account_id, totals).await?;
                after = UserCursor {
                    account_id,
                    user_id: i64::MAX,
                };
            }
            if whole.len() >= held_at_most || (finished && !whole.is_empty()) {
                self.sweep_accounts(&whole, totals).await?;
                whole.clear();
            }
            if finished {
                return Ok(());
            }
        }
    }

    /// Sweeps accounts read whole: `users` are every active user of each, in (account, id)
    /// order.
    async fn sweep_accounts(
        &self,
        users: &[SweepUser],
        totals: &mut Totals,
    ) -> Result<(), JobError> {
        let by_account: Vec<&[SweepUser]> = users
            .chunk_by(|a, b| a.user.account_id == b.user.account_id)
            .collect();
        let ids: Vec<i64> = by_account.iter().map(|of| of[0].user.account_id).collect();
        let mut tx = self.rt.store.begin_read().await?;
        let accounts = store::accounts_of(&mut tx, &ids).await?;
        let held = if self.kind == SweepKind::LockIdle {
            store::held_accounts(&mut tx, self.kind.as_str(), &ids).await?
        } else {
            Vec::new()
        };
        tx.rollback().await?;
        let accounts: HashMap<i64, &SweepAccount> = accounts
            .iter()
            .map(|account| (account.account.id, account))
            .collect();
        let mut judged = Vec::with_capacity(accounts.len());
        let mut candidates = Vec::new();
        for of_account in by_account {
            let Some(account) = accounts.get(&of_account[0].user.account_id).copied() else {
                continue;
            };
            let mut rules = AccountRules::new(self.kind, self.settings, account);
            rules.keep_last_manager_among(of_account, self.scope.at);
            let mut counts = Counts::default();
            let mut wanted = Vec::new();
            for user in of_account {
                let (_, action) = rules.judge(user, self.scope.at);
                counts.active_users += 1;
                counts.would_act += u64::from(action == Action::Act);
                if matches!(action, Action::Act | Action::Warn(_)) {
                    wanted.push((user.user.id, action));
                }
            }
            let breaker = self.breaker_of(
                account.account.id,
                held.contains(&account.account.id),
                counts,
            );
            self.record_breaker(account.account.id, counts, breaker, totals)
                .await?;
            let blocked = breaker.blocks();
            candidates.extend(
                wanted
                    .into_iter()
                    .filter(|(_, action)| !(blocked && *action == Action::Act))
                    .map(|(id, _)| id),
            );
            judged.push(Judged {
                account,
                rules,
                blocked,
            });
            totals.accounts += 1;
            totals.users += counts.active_users;
        }
        for batch in candidates.chunks(self.settings.batch_size as usize) {
            self.apply_batch(&judged, batch, totals).await?;
        }
        self.log_progress(totals);
        Ok(())
    }

    /// Sweeps one account too big to hold: a read-only pass counts for the breaker, then
    /// its pages are judged and changed.
    async fn sweep_big_account(
        &self,
        account_id: i64,
        totals: &mut Totals,
    ) -> Result<(), JobError> {
        let batch = self.batch();
        let mut tx = self.rt.store.begin_read().await?;
        let accounts = store::accounts_of(&mut tx, &[account_id]).await?;
        let Some(account) = accounts.first() else {
            tx.rollback().await?;
            return Ok(());
        };
        let rules =
            AccountRules::load(&mut tx, self.kind, self.settings, account, self.scope.at).await?;
        tx.rollback().await?;
        let counts = if self.kind == SweepKind::LockIdle {
            super::judge_all(
                self.rt.store,
                &rules,
                account_id,
                self.scope.at,
                batch,
                |_, _, _| {},
            )
            .await?
        } else {
            Counts::default()
        };
        let mut read = self.rt.store.begin_read().await?;
        let held = store::open_hold(&mut read, account_id, self.kind.as_str())
            .await?
            .is_some();
        read.rollback().await?;
        let breaker = self.breaker_of(account_id, held, counts);
        self.record_breaker(account_id, counts, breaker, totals)
            .await?;
        let judged = [Judged {
            account,
            rules,
            blocked: breaker.blocks(),
        }];
        totals.accounts += 1;
        let mut after = 0;
        loop {
            let mut tx = self.rt.store.begin_read().await?;
            let page = store::active_users_after(&mut tx, account_id, after, batch).await?;
            tx.rollback().await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.user.id;
            let judged_account = &judged[0];
            let candidates: Vec<i64> = page
                .iter()
                .filter(
                    |user| match judged_account.rules.judge(user, self.scope.at).1 {
                        Action::Act => !judged_account.blocked,
                        Action::Warn(_) => true,
                        Action::Exempt(_) | Action::Nothing => false,
                    },
                )
                .map(|user| user.user.id)
                .collect();
            self.apply_batch(&judged, &candidates, totals).await?;
            totals.users += page.len() as u64;
            self.log_progress(totals);
            if (page.len() as i64) < batch {
                break;
            }
        }
        Ok(())
    }

    /// The breaker's verdict on an account (idle lock only).
    fn breaker_of(&self, account_id: i64, held: bool, counts: Counts) -> Breaker {
        if self.kind != SweepKind::LockIdle {
            return Breaker::Clear;
        }
        let trips = sweeps::breaker_trips(
            counts.would_act,
            counts.active_users,
            self.settings.breaker_share,
        );
        Breaker::verdict(
            held,
            trips,
            self.scope.confirm_accounts.contains(&account_id),
        )
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

    fn log_progress(&self, totals: &Totals) {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        tracing::info!(
            sweep = self.kind.as_str(),
            accounts_done = totals.accounts,
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
        judged: &[Judged<'_>],
        candidates: &[i64],
        totals: &mut Totals,
    ) -> Result<(), JobError> {
        if candidates.is_empty() {
            return Ok(());
        }
        let at = self.scope.at;
        let ctx = self.rt.context();
        let by_account: HashMap<i64, &Judged<'_>> = judged
            .iter()
            .map(|judged| (judged.account.account.id, judged))
            .collect();
        let mut tx = JobTx::begin_batch(self.rt.store, self.rt.job_id).await?;
        let locked = store::active_users_locked(&mut tx, candidates).await?;
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
            match account.rules.judge(user, at) {
                (Some(deadline), Action::Act) if !account.blocked => {
                    let detail = serde_json::json!({
                        "sweep": self.kind.as_str(),
                        "deadline": deadline,
                        "at": at,
                    });
                    due.push(DueUser {
                        account_id: user.user.account_id,
                        user_id: user.user.id,
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
        let changed = match self.kind {
            SweepKind::LockIdle => store::lock_idle(&mut tx, &stamp, &due).await?,
            SweepKind::ExpirePasswords => {
                store::require_password_change(&mut tx, &stamp, &due).await?
            }
        };
        let users: HashMap<i64, &SweepUser> =
            locked.iter().map(|user| (user.user.id, user)).collect();
        let mut emails = Vec::with_capacity(warned.len() + changed.len());
        for warning in &warned {
            let Some(user) = users.get(&warning.user_id) else {
                continue;
            };
            let account = by_account[&user.user.account_id];
            let (template, variables) = warning_email(&account.rules, user, warning.deadline, at);
            emails.push(EmailTo {
                account: &account.account.account,
                user: &user.user,
                template,
                variables,
            });
        }
        for change in &changed {
            let Some(user) = users.get(&change.user_id) else {
                continue;
            };
            let account = by_account[&change.account_id];
            let (template, variables) = match self.kind {
                SweepKind::LockIdle => (
                    Template::LockedIdle,
                    serde_json::json!({
                        "idle_days": sweeps::whole_days(signals(user).last_seen(), at),
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
        totals.changed += changed.len() as u64;
        totals.warnings += warned.len() as u64;
        Ok(())
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
                audit::record(
                    &mut tx,
                    &stamp,
                    "account",
                    account_id,
                    "sweep_held",
                    &detail.to_string(),
                )
                .await?;
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
                audit::record(
                    &mut tx,
                    &stamp,
                    "account",
                    account_id,
                    "sweep_hold_confirmed",
                    &detail.to_string(),
                )
                .await?;
            }
        }
        // Neither writes: the caller takes no transaction for them.
        Breaker::Held | Breaker::Clear => {}
    }
    commit(rt, tx, name).await
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
                "idle_days": sweeps::whole_days(signals(user).last_seen(), at),
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
