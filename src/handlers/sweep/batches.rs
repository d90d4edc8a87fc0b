//! A user sweep run through the queue: per account, a read-only pass for the breaker, then
//! the changes in batches, each its own job transaction committed through the registry
//! (rows, audit, emails, the batch's event). Every change is guarded by the state it
//! leaves and every warning by its marker, so a rerun after a crash finishes the rest and
//! repeats nothing; the job is marked applied once all accounts are done.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::{AccountRules, Action, Breaker, Counts, Scope, SweepKind, signals};
use crate::config::SweepSettings;
use crate::domain::sweeps;
use crate::handlers::outbox::{EmailTo, record_emails};
use crate::handlers::registry::{Runtime, commit};
use crate::handlers::{JobError, JobTx, Outcome};
use crate::mail::render::Template;
use crate::store::sweeps::{self as store, Hold, SweepAccount, SweepUser, WarningDue};
use crate::store::{audit, ledger};

/// What a run did, for its outcome and log line.
#[derive(Debug, Default)]
struct Totals {
    accounts: u64,
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
    let mut totals = Totals::default();
    let mut after = 0;
    loop {
        let accounts = super::accounts_page(rt.store, scope, after).await?;
        for account in &accounts {
            sweep_account(rt, name, kind, scope, account, &mut totals).await?;
            totals.accounts += 1;
        }
        match accounts.last() {
            Some(last) => after = last.account.id,
            None => break,
        }
    }
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

async fn sweep_account(
    rt: &Runtime<'_>,
    name: &'static str,
    kind: SweepKind,
    scope: &Scope,
    account: &SweepAccount,
    totals: &mut Totals,
) -> Result<(), JobError> {
    let settings = &rt.settings.sweeps;
    let account_id = account.account.id;
    let batch = i64::from(settings.batch_size);
    let mut tx = rt.store.begin_read().await?;
    let rules = AccountRules::load(&mut tx, kind, settings, account, scope.at).await?;
    tx.rollback().await?;
    let counts = if kind == SweepKind::LockIdle {
        super::judge_all(rt.store, &rules, account_id, scope.at, batch, |_, _, _| {}).await?
    } else {
        Counts::default()
    };
    let mut read = rt.store.begin_read().await?;
    let breaker = super::breaker(&mut read, &rules, settings, account_id, scope, counts).await?;
    read.rollback().await?;
    // Only a verdict that writes (a hold, a confirmation) takes a transaction of its own: an
    // account left clear, the most, costs the sweep no commit.
    if matches!(breaker, Breaker::Trips | Breaker::Confirmed) {
        record_verdict(rt, name, kind, settings, account_id, counts, breaker).await?;
    } else if breaker == Breaker::Held {
        tracing::warn!(account_id, "account held by the breaker: nobody locked");
    }
    if breaker.blocks() {
        totals.held.push(account_id);
    }
    let started = Instant::now();
    let mut done = 0_u64;
    let mut after = 0;
    loop {
        let mut tx = JobTx::begin_batch(rt.store, rt.job_id, (account_id, None)).await?;
        let page = store::active_users_after(&mut tx, account_id, after, batch, true).await?;
        let Some(last) = page.last() else {
            tx.into_parts().tx.rollback().await?;
            break;
        };
        after = last.user.id;
        let (changed, warned) = apply_batch(
            rt,
            &mut tx,
            &rules,
            account,
            &page,
            scope.at,
            breaker.blocks(),
        )
        .await?;
        commit(rt, tx, name).await?;
        done += page.len() as u64;
        totals.changed += changed;
        totals.warnings += warned;
        let seconds = started.elapsed().as_secs_f64().max(1e-3);
        tracing::info!(
            account_id,
            rows_done = done,
            changed,
            warned,
            rows_per_second = (done as f64 / seconds).round(),
            "sweep progress"
        );
        if (page.len() as i64) < batch {
            break;
        }
    }
    Ok(())
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
    let mut tx = JobTx::begin_batch(rt.store, rt.job_id, (account_id, None)).await?;
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

/// Applies one page's judgments in the batch's transaction; returns (changed, warned).
async fn apply_batch(
    rt: &Runtime<'_>,
    tx: &mut JobTx,
    rules: &AccountRules,
    account: &SweepAccount,
    page: &[SweepUser],
    at: DateTime<Utc>,
    blocked: bool,
) -> Result<(u64, u64), JobError> {
    let ctx = rt.context();
    let stamp = ctx.audit_stamp(account.account.id, "system");
    let mut due = Vec::new();
    let mut warnings = Vec::new();
    for user in page {
        let (deadline, action) = rules.judge(user, at);
        match (action, deadline) {
            (Action::Act, Some(deadline)) if !blocked => {
                let detail = serde_json::json!({
                    "sweep": rules.kind.as_str(),
                    "deadline": deadline,
                    "at": at,
                });
                due.push((user.user.id, detail.to_string()));
            }
            (Action::Warn(stage_days), Some(deadline)) => warnings.push(WarningDue {
                user_id: user.user.id,
                deadline,
                stage_days,
            }),
            _ => {}
        }
    }
    // Set-based, as the bare statements would be: the batch's markers, changes and emails
    // each in one statement (PostgreSQL), not one round trip per user.
    let kind = rules.kind.warning();
    let warned = store::mark_warnings(tx, kind.as_str(), &warnings, stamp.at).await?;
    let changed = match rules.kind {
        SweepKind::LockIdle => store::lock_idle(tx, &stamp, &due).await?,
        SweepKind::ExpirePasswords => store::require_password_change(tx, &stamp, &due).await?,
    };
    let by_id = |id: i64| page.iter().find(|user| user.user.id == id);
    let mut emails = Vec::with_capacity(warned.len() + changed.len());
    for warning in &warned {
        if let Some(user) = by_id(warning.user_id) {
            let (template, variables) = warning_email(rules, user, warning.deadline, at);
            emails.push(EmailTo {
                user: &user.user,
                template,
                variables,
            });
        }
    }
    for user in page.iter().filter(|user| changed.contains(&user.user.id)) {
        let (template, variables) = match rules.kind {
            SweepKind::LockIdle => (
                Template::LockedIdle,
                serde_json::json!({
                    "idle_days": sweeps::whole_days(signals(user).last_seen(), at),
                    "locked_at": rules.local(stamp.at),
                }),
            ),
            SweepKind::ExpirePasswords => (Template::PasswordExpired, serde_json::json!({})),
        };
        emails.push(EmailTo {
            user: &user.user,
            template,
            variables,
        });
    }
    record_emails(&ctx, tx, &account.account, emails).await?;
    Ok((changed.len() as u64, warned.len() as u64))
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
