//! `lifecycle sweep release-licenses|prune`: runs a sweep now, in this process (not through
//! the queue), or with `--dry-run` lists what it would change and changes nothing.

use chrono::{DateTime, Utc};
use clap::Args;
use lifecycle::App;
use lifecycle::handlers::{prune_job_history, release_due_licenses};
use lifecycle::store::{StoreError, ledger, licenses};
use serde_json::json;

/// The sweeps run in this process, as [`super::sweep::SweepCommand`] hands them over.
pub enum SweepCommand {
    /// Free every `releasing` license whose release instant has passed (ReleaseDueLicenses).
    ReleaseLicenses(SweepArgs),
    /// Delete finished jobs past queue.retention_days (PruneJobHistory).
    Prune(SweepArgs),
}

#[derive(Args)]
pub struct SweepArgs {
    /// List what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The instant the sweep runs as (RFC 3339, `2026-03-29T03:00:00Z`); default now. One
    /// later than now counts as now: nothing is freed or pruned early.
    #[arg(long, value_name = "TIME", value_parser = parse_instant)]
    at: Option<DateTime<Utc>>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|error| format!("{error}; expected RFC 3339, e.g. 2026-03-29T03:00:00Z"))
}

/// Runs `command` against a service started for it, printing what it did.
pub async fn execute(
    settings: lifecycle::config::Settings,
    command: SweepCommand,
) -> anyhow::Result<()> {
    let app = App::start(settings, lifecycle::clock::Clock::System).await?;
    let printed = command.run(&app).await;
    app.store.close().await;
    print!("{}", printed?);
    Ok(())
}

/// Licenses the dry-run lists per read.
const PAGE: i64 = 1000;

impl SweepCommand {
    /// Runs the sweep (or its dry-run) and returns what to print.
    pub async fn run(self, app: &App) -> anyhow::Result<String> {
        match self {
            SweepCommand::ReleaseLicenses(args) => release_licenses(app, args).await,
            SweepCommand::Prune(args) => prune(app, args).await,
        }
    }
}

async fn release_licenses(app: &App, args: SweepArgs) -> anyhow::Result<String> {
    let at = args.at.unwrap_or_else(|| app.clock.now());
    let cutoff = release_due_licenses::cutoff(&app.clock, at);
    if !args.dry_run {
        let job_id = uuid::Uuid::new_v4();
        let released =
            release_due_licenses::release_due(&app.store, &app.clock, job_id, at).await?;
        return Ok(if args.json {
            json!({ "sweep": "release-licenses", "dry_run": false, "due_by": cutoff, "changed": released, "audit_job_id": job_id }).to_string() + "\n"
        } else {
            format!("released {released} licenses due by {cutoff} (audited as job {job_id})\n")
        });
    }
    let due = all_due(app, cutoff).await?;
    if args.json {
        let licenses: Vec<_> = due
            .iter()
            .map(|license| {
                json!({
                    "license_id": license.id,
                    "account_id": license.account_id,
                    "user_id": license.user_id,
                    "country": license.country,
                    "release_at": license.release_at,
                })
            })
            .collect();
        return Ok(json!({ "sweep": "release-licenses", "dry_run": true, "due_by": cutoff, "changed": due.len(), "licenses": licenses }).to_string() + "\n");
    }
    let mut text = format!(
        "{:<10} {:<10} {:<10} {:<8} RELEASE AT\n",
        "LICENSE", "ACCOUNT", "USER", "COUNTRY"
    );
    for license in &due {
        let release_at = license
            .release_at
            .map_or_else(|| "-".to_string(), |at| at.to_rfc3339());
        text.push_str(&format!(
            "{:<10} {:<10} {:<10} {:<8} {release_at}\n",
            license.id, license.account_id, license.user_id, license.country
        ));
    }
    text.push_str(&format!(
        "dry run: {} licenses would be released (due by {cutoff}); nothing changed\n",
        due.len()
    ));
    Ok(text)
}

async fn all_due(
    app: &App,
    cutoff: DateTime<Utc>,
) -> Result<Vec<licenses::LicenseRow>, StoreError> {
    let mut due = Vec::new();
    let mut tx = app.store.begin_read().await?;
    loop {
        let after = due
            .last()
            .map_or(0, |license: &licenses::LicenseRow| license.id);
        let page = licenses::due_after(&mut tx, cutoff, after, PAGE).await?;
        let done = (page.len() as i64) < PAGE;
        due.extend(page);
        if done {
            break;
        }
    }
    tx.commit().await?;
    Ok(due)
}

async fn prune(app: &App, args: SweepArgs) -> anyhow::Result<String> {
    let at = args.at.unwrap_or_else(|| app.clock.now());
    let cutoffs = prune_job_history::cutoffs(&app.settings.queue, &app.clock, at);
    let before = DateTime::<Utc>::from_timestamp_millis(cutoffs.finished_before_ms).unwrap_or(at);
    let (changed, verb) = if args.dry_run {
        (
            ledger::count_prunable(&app.store, cutoffs).await? as u64,
            "would be pruned",
        )
    } else {
        (
            ledger::prune(&app.store, cutoffs, std::time::Duration::MAX).await?,
            "pruned",
        )
    };
    Ok(if args.json {
        json!({ "sweep": "prune", "dry_run": args.dry_run, "finished_before": before, "changed": changed }).to_string() + "\n"
    } else {
        let tail = if args.dry_run {
            "; nothing changed"
        } else {
            ""
        };
        format!(
            "{changed} finished jobs {verb} (finished before {before}, queue.retention_days = {}){tail}\n",
            app.settings.queue.retention_days
        )
    })
}
