//! `lifecycle jobs …`: the operator's view of the ledger and their actions on it. Every
//! action is recorded in `operator_actions` under `--operator` (default: `$USER`).

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use lifecycle::App;
use lifecycle::queue::admin::Operator;
use lifecycle::store::admin::{self, JobCursor, JobFilter, JobState};
use lifecycle::store::ledger::JobRecord;
use serde_json::json;
use uuid::Uuid;

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Jobs newest first, filtered; prints the cursor of the next page.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Text in the payload or the last error (case-insensitive).
        #[arg(long)]
        text: Option<String>,
        /// Jobs per page, 1 to 1000.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1000))]
        limit: i64,
        /// The cursor a previous page printed: the page after it.
        #[arg(long)]
        after: Option<JobCursor>,
        #[arg(long)]
        json: bool,
    },
    /// One job: state, payload, every failed attempt, its audit rows, events and emails.
    Show { id: Uuid },
    /// Runs jobs again now (dead, discarded or retrying ones), keeping their history.
    Retry {
        /// The jobs to retry.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<Uuid>,
        /// Every job matching the filter (which needs --state dead, discarded or retrying).
        #[arg(long, requires = "state")]
        all: bool,
        #[command(flatten)]
        filter: FilterArgs,
        /// Confirms acting on more than one job.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        operator: OperatorArg,
    },
    /// Gives up on a queued, retrying or dead job: final state `discarded`, history kept.
    Discard {
        id: Uuid,
        /// Why (recorded with the action, and as the job's last error).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        operator: OperatorArg,
    },
    /// Stops workers starting jobs of a kind (they wait, queued) until `resume`.
    Pause {
        /// The kind's slug (`send-email`) or name (`mail::send`).
        kind: String,
        #[command(flatten)]
        operator: OperatorArg,
    },
    /// Lets workers run a paused kind again.
    Resume {
        kind: String,
        #[command(flatten)]
        operator: OperatorArg,
    },
    /// Operators' actions, newest first.
    Actions {
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1000))]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

/// The filter options `list` and `retry --all` share.
#[derive(Args, Clone, Debug, Default)]
pub struct FilterArgs {
    /// queued, scheduled, running, retrying, dead, done or discarded.
    #[arg(long)]
    state: Option<JobState>,
    /// A job kind: its slug or name.
    #[arg(long, value_parser = parse_kind)]
    kind: Option<String>,
    /// Only this account's jobs.
    #[arg(long)]
    account: Option<i64>,
    /// Jobs about this user (their payload's user_id, or an event about them).
    #[arg(long)]
    user: Option<i64>,
}

impl FilterArgs {
    fn filter(&self, text: Option<String>) -> JobFilter {
        JobFilter {
            state: self.state,
            kind: self.kind.clone(),
            account_id: self.account,
            user_id: self.user,
            text: text.filter(|text| !text.is_empty()),
            ..JobFilter::default()
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct OperatorArg {
    /// Who acts, as the audit trail records it (default: $USER).
    #[arg(long, env = "LIFECYCLE_OPERATOR")]
    operator: Option<String>,
}

impl OperatorArg {
    fn operator(&self) -> anyhow::Result<Operator> {
        let name = match &self.operator {
            Some(name) => name.clone(),
            None => std::env::var("USER").unwrap_or_else(|_| "cli".to_string()),
        };
        Operator::new(&name).map_err(|error| anyhow::anyhow!("invalid --operator: {error}"))
    }
}

fn parse_kind(text: &str) -> Result<String, String> {
    lifecycle_jobs::kind_name(text)
        .map(str::to_string)
        .ok_or_else(|| {
            let slugs: Vec<&str> = lifecycle_jobs::KINDS
                .iter()
                .map(|(_, slug)| *slug)
                .collect();
            format!("unknown kind {text:?}: one of {}", slugs.join(", "))
        })
}

pub async fn run(app: &App, command: JobsCommand) -> anyhow::Result<()> {
    let now_ms = app.clock.now_ms();
    match command {
        JobsCommand::List {
            filter,
            text,
            limit,
            after,
            json,
        } => {
            let filter = filter.filter(text);
            let page = admin::list_jobs(&app.store, &filter, after, limit, now_ms).await?;
            if json {
                let jobs: Vec<_> = page.jobs.iter().map(|job| job_json(job, now_ms)).collect();
                let next = page.next.map(|cursor| cursor.to_string());
                println!("{}", json!({ "jobs": jobs, "next": next }));
            } else {
                print_jobs(&page.jobs, now_ms);
                if let Some(next) = page.next {
                    println!("next page: --after {next}");
                }
            }
        }
        JobsCommand::Show { id } => show(app, id, now_ms).await?,
        JobsCommand::Retry {
            ids,
            all,
            filter,
            yes,
            operator,
        } => {
            let operator = operator.operator()?;
            if all {
                let filter = filter.filter(None);
                let count = admin::count_matching(&app.store, &filter, now_ms).await?;
                println!("{count} job(s) match");
                if count > 1 && !yes {
                    bail!("retrying {count} jobs: pass --yes to confirm");
                }
                let retried = app.queue.retry_matching(&operator, &filter).await?;
                println!("retried {retried} job(s)");
            } else {
                if ids.len() > 1 && !yes {
                    bail!("retrying {} jobs: pass --yes to confirm", ids.len());
                }
                let retried = app.queue.retry_jobs(&operator, &ids).await?;
                for id in &retried.queued {
                    println!("retried {id}");
                }
                if !retried.skipped.is_empty() {
                    let skipped: Vec<String> =
                        retried.skipped.iter().map(Uuid::to_string).collect();
                    bail!(
                        "not retried (no such job, or not dead, discarded or retrying): {}",
                        skipped.join(", ")
                    );
                }
            }
        }
        JobsCommand::Discard {
            id,
            reason,
            operator,
        } => {
            if reason.trim().is_empty() {
                bail!("invalid --reason: say why the job is discarded");
            }
            app.queue
                .discard_job(&operator.operator()?, id, &reason)
                .await?;
            println!("discarded {id}");
        }
        JobsCommand::Pause { kind, operator } => {
            let (name, changed) = app.queue.pause_kind(&operator.operator()?, &kind).await?;
            let already = if changed { "" } else { " (already paused)" };
            println!("paused {name}{already}");
        }
        JobsCommand::Resume { kind, operator } => {
            let (name, changed) = app.queue.resume_kind(&operator.operator()?, &kind).await?;
            let already = if changed { "" } else { " (was not paused)" };
            println!("resumed {name}{already}");
        }
        JobsCommand::Actions { limit, json } => {
            let actions = admin::list_actions(&app.store, limit).await?;
            if json {
                println!("{}", serde_json::to_string(&actions)?);
            } else {
                for action in actions {
                    println!(
                        "{}  {:<10} {:<9} {:>5} job(s)  {}{}",
                        time(action.at_ms),
                        action.operator,
                        action.action,
                        action.job_count,
                        action.target,
                        action
                            .reason
                            .map(|r| format!("  reason: {r}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}

async fn show(app: &App, id: Uuid, now_ms: i64) -> anyhow::Result<()> {
    let Some(detail) = admin::job_detail(&app.store, id).await? else {
        bail!("no job {id}");
    };
    let job = &detail.job;
    println!("id:          {}", job.id);
    println!("kind:        {}", job.kind);
    println!("state:       {}", JobState::of(job, now_ms));
    println!(
        "account:     {}",
        job.account_id.map_or("-".into(), |a| a.to_string())
    );
    println!("attempts:    {}/{}", job.attempts, job.max_attempts);
    println!("created:     {}", time(job.created_at_ms));
    println!("last error:  {}", job.last_error.as_deref().unwrap_or("-"));
    println!("payload:     {}", job.payload);
    for attempt in &detail.attempts {
        let kind = if attempt.permanent {
            "permanent"
        } else {
            "transient"
        };
        println!(
            "attempt {}:   {} {kind}: {}",
            attempt.attempt,
            time(attempt.at_ms),
            attempt.error
        );
    }
    for row in &detail.audit {
        println!(
            "audit:       {} {} {} {} {} {}",
            row.at.to_rfc3339(),
            row.actor,
            row.entity,
            row.entity_id,
            row.action,
            row.detail
        );
    }
    for event in &detail.events {
        println!(
            "event:       {} {} {}",
            event.at.to_rfc3339(),
            event.kind,
            event.changes
        );
    }
    for email in &detail.emails {
        println!(
            "email:       {} {} to {} ({})",
            email.created_at.to_rfc3339(),
            email.template,
            email.to_address,
            email.state
        );
    }
    Ok(())
}

/// A job as `--json` prints it.
pub fn job_json(job: &JobRecord, now_ms: i64) -> serde_json::Value {
    json!({
        "id": job.id,
        "kind": job.kind,
        "state": JobState::of(job, now_ms),
        "account_id": job.account_id,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "created_at_ms": job.created_at_ms,
        "run_at_ms": job.run_at_ms,
        "finished_at_ms": job.finished_at_ms,
        "last_error": job.last_error,
        "payload": serde_json::from_str::<serde_json::Value>(&job.payload)
            .unwrap_or_else(|_| job.payload.clone().into()),
    })
}

pub fn print_jobs(jobs: &[JobRecord], now_ms: i64) {
    for job in jobs {
        let error = job.last_error.as_deref().unwrap_or("");
        let error: String = error.chars().take(60).collect();
        println!(
            "{}  {}  {:<26} {:<9} account {:<6} {}/{}  {}",
            job.id,
            time(job.created_at_ms),
            job.kind,
            JobState::of(job, now_ms).as_str(),
            job.account_id.map_or("-".into(), |a| a.to_string()),
            job.attempts,
            job.max_attempts,
            error
        );
    }
}

pub fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |at| at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}
