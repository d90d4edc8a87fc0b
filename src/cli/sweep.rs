//! `lifecycle sweep <lock-idle|expire-passwords|release-licenses|prune> ...`: the one
//! `sweep` command. Each sweep previews (`--dry-run`, changing nothing) or enqueues its job,
//! so a run from the command line is visible and retried like a scheduled one. The
//! dry-runs of `release-licenses` and `prune` are in [`super::sweep_release_prune`].

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use lifecycle::App;
use lifecycle::clock::Clock;
use lifecycle::config::Settings;
use lifecycle::handlers::sweep::{Scope, SweepKind, preview};
use lifecycle::queue::EnqueueRequest;
use lifecycle::queue::admin::Operator;
use lifecycle_jobs::{ExpirePasswords, Job, LockIdleUsers, PruneJobHistory, ReleaseDueLicenses};

use super::sweep_release_prune::{SweepArgs, prune_dry_run, release_licenses_dry_run};

/// Every sweep the CLI runs.
#[derive(Subcommand)]
pub enum SweepCommand {
    /// Lock users idle for the account's idle days (LockIdleUsers): preview or enqueue.
    LockIdle(UserSweepArgs),
    /// Require a new password once it is older than the maximum age (ExpirePasswords):
    /// preview or enqueue.
    ExpirePasswords(UserSweepArgs),
    /// Free every `releasing` license whose release instant has passed (ReleaseDueLicenses):
    /// list them (--dry-run) or enqueue.
    ReleaseLicenses(SweepArgs),
    /// Delete finished jobs past queue.retention_days (PruneJobHistory): count them
    /// (--dry-run) or enqueue.
    Prune(SweepArgs),
}

#[derive(Clone, Copy, Debug)]
enum SweepName {
    /// Lock users idle for the account's idle days (LockIdleUsers).
    LockIdle,
    /// Require a new password once it is older than the maximum age (ExpirePasswords).
    ExpirePasswords,
}

#[derive(Args, Debug)]
pub struct UserSweepArgs {
    /// Print, per account, who would be affected and why; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only this account.
    #[arg(long)]
    account: Option<i64>,
    /// Judge as of this instant (RFC 3339, `2026-06-30T02:00:00Z`); now when absent.
    #[arg(long)]
    at: Option<DateTime<Utc>>,
    /// The dry-run as JSON.
    #[arg(long, requires = "dry_run")]
    json: bool,
    /// Lift the circuit breaker's hold on `--account` and lock there in this run.
    #[arg(long, requires = "account")]
    confirm: bool,
}

pub async fn execute(settings: Settings, command: SweepCommand) -> anyhow::Result<()> {
    let (sweep, args) = match command {
        SweepCommand::LockIdle(args) => (SweepName::LockIdle, args),
        SweepCommand::ExpirePasswords(args) => (SweepName::ExpirePasswords, args),
        SweepCommand::ReleaseLicenses(args) => return execute_sweep(settings, true, args).await,
        SweepCommand::Prune(args) => return execute_sweep(settings, false, args).await,
    };
    execute_user_sweep(settings, sweep, args).await
}

async fn execute_user_sweep(
    settings: Settings,
    sweep: SweepName,
    args: UserSweepArgs,
) -> anyhow::Result<()> {
    if let Some(account) = args.account.filter(|id| *id < 1) {
        anyhow::bail!("invalid --account: must be a positive id, not {account}");
    }
    if args.confirm && matches!(sweep, SweepName::ExpirePasswords) {
        anyhow::bail!("--confirm lifts the idle-lock breaker: it applies to lock-idle only");
    }
    let app = App::start(settings, Clock::System).await?;
    let at = args.at.unwrap_or_else(|| app.clock.now());
    let confirm_accounts: Vec<i64> = args.account.filter(|_| args.confirm).into_iter().collect();
    if args.dry_run {
        let kind = match sweep {
            SweepName::LockIdle => SweepKind::LockIdle,
            SweepName::ExpirePasswords => SweepKind::ExpirePasswords,
        };
        let scope = Scope {
            at,
            account_id: args.account.unwrap_or(0),
            confirm_accounts,
        };
        let previews = preview::preview(&app.store, &app.settings.sweeps, kind, &scope).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&previews)?);
        } else {
            println!(
                "{} as of {} (dry run: nothing changed)",
                kind.as_str(),
                at.to_rfc3339()
            );
            print!("{}", preview::table(&previews));
        }
    } else if let (SweepName::LockIdle, Some(account), true) = (sweep, args.account, args.confirm) {
        // The dashboard's Confirm button does the same, through the same function.
        let operator = std::env::var("USER").unwrap_or_else(|_| "cli".to_string());
        let operator = Operator::new(&operator)?;
        let job_id = app.queue.confirm_lock_idle(&operator, account, at).await?;
        println!("{job_id}");
    } else {
        // `at` is fixed now, so a retried or recovered job judges as the first attempt.
        let request = match sweep {
            SweepName::LockIdle => request(LockIdleUsers {
                at: Some(at),
                account_id: args.account,
                confirm_accounts,
            })?,
            SweepName::ExpirePasswords => request(ExpirePasswords {
                at: Some(at),
                account_id: args.account,
                confirm_accounts,
            })?,
        };
        let enqueued = app.queue.enqueue(request).await?;
        println!("{}", enqueued.id);
    }
    app.store.close().await;
    Ok(())
}

/// `release-licenses` (`releases`) or `prune`: the dry-run's listing, or the job enqueued
/// and its id printed. `at` is fixed now, so a retried job judges as the first attempt.
async fn execute_sweep(settings: Settings, releases: bool, args: SweepArgs) -> anyhow::Result<()> {
    let app = App::start(settings, Clock::System).await?;
    let at = args.at.unwrap_or_else(|| app.clock.now());
    let printed = match (args.dry_run, releases) {
        (true, true) => release_licenses_dry_run(&app, at, args.json).await,
        (true, false) => prune_dry_run(&app, at, args.json).await,
        (false, _) => {
            let request = if releases {
                request(ReleaseDueLicenses { at })?
            } else {
                request(PruneJobHistory { at })?
            };
            match app.queue.enqueue(request).await {
                Ok(enqueued) => Ok(format!("{}\n", enqueued.id)),
                Err(error) => Err(error.into()),
            }
        }
    };
    app.store.close().await;
    print!("{}", printed?);
    Ok(())
}

/// A sweep over every account has no account: its ledger row names none.
fn request<J: Job>(job: J) -> anyhow::Result<EnqueueRequest> {
    job.validate()?;
    let mut request = EnqueueRequest::for_job(&job, None)?;
    request.account_id = request.account_id.filter(|id| *id > 0);
    Ok(request)
}
