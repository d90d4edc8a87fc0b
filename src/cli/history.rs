//! `lifecycle history --user U`: what happened to a user, newest first: their jobs, the
//! failed attempts of those jobs, and the audit rows about them.

use clap::Args;
use lifecycle::App;
use lifecycle::store::admin;
use serde_json::json;

use super::jobs::{job_json, print_jobs, time};

#[derive(Args)]
pub struct HistoryArgs {
    /// The user's id.
    #[arg(long)]
    user: i64,
    /// Only this account's rows.
    #[arg(long)]
    account: Option<i64>,
    /// At most this many jobs and audit rows, 1 to 1000.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=1000))]
    limit: i64,
    #[arg(long)]
    json: bool,
}

pub async fn run(app: &App, args: HistoryArgs) -> anyhow::Result<()> {
    let now_ms = app.clock.now_ms();
    let history =
        admin::user_history(&app.store, args.user, args.account, args.limit, now_ms).await?;
    if args.json {
        let jobs: Vec<_> = history
            .jobs
            .iter()
            .map(|job| job_json(job, now_ms))
            .collect();
        println!(
            "{}",
            json!({ "jobs": jobs, "attempts": history.attempts, "audit": history.audit })
        );
        return Ok(());
    }
    println!("jobs of user {} ({}):", args.user, history.jobs.len());
    print_jobs(&history.jobs, now_ms);
    println!("failed attempts ({}):", history.attempts.len());
    for attempt in &history.attempts {
        println!(
            "{}  {} attempt {}: {}",
            time(attempt.at_ms),
            attempt.job_id,
            attempt.attempt,
            attempt.error
        );
    }
    println!("audit ({}):", history.audit.len());
    for row in &history.audit {
        println!(
            "{}  account {} {} {} {} {} {} (job {})",
            row.at.to_rfc3339(),
            row.account_id,
            row.actor,
            row.entity,
            row.entity_id,
            row.action,
            row.detail,
            row.job_id.map_or("-".into(), |id| id.to_string())
        );
    }
    Ok(())
}
