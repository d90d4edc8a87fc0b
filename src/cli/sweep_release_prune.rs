//! The dry-runs of `lifecycle sweep release-licenses|prune`: what the sweep would change,
//! changing nothing. Without `--dry-run` they are enqueued like every sweep
//! ([`super::sweep::execute`]).

use chrono::{DateTime, Utc};
use clap::Args;
use lifecycle::App;
use lifecycle::handlers::{prune_job_history, release_due_licenses};
use lifecycle::store::{StoreError, ledger, licenses};
use serde_json::json;

#[derive(Args)]
pub struct SweepArgs {
    /// List what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The instant the sweep runs as (RFC 3339, `2026-03-29T03:00:00Z`); default now. One
    /// later than now counts as now: nothing is freed or pruned early.
    #[arg(long, value_name = "TIME", value_parser = parse_instant)]
    pub at: Option<DateTime<Utc>>,
    /// The dry-run as JSON.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|error| format!("{error}; expected RFC 3339, e.g. 2026-03-29T03:00:00Z"))
}

/// Licenses the dry-run lists per read.
const PAGE: i64 = 1000;

/// The licenses ReleaseDueLicenses would free at `at`, as a table or JSON.
pub async fn release_licenses_dry_run(
    app: &App,
    at: DateTime<Utc>,
    json: bool,
) -> anyhow::Result<String> {
    let cutoff = release_due_licenses::cutoff(&app.clock, at);
    let due = all_due(app, cutoff).await?;
    if json {
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

/// How many finished jobs PruneJobHistory would delete at `at`.
pub async fn prune_dry_run(app: &App, at: DateTime<Utc>, json: bool) -> anyhow::Result<String> {
    let cutoffs = prune_job_history::cutoffs(&app.settings.queue, &app.clock, at);
    let before = DateTime::<Utc>::from_timestamp_millis(cutoffs.finished_before_ms).unwrap_or(at);
    let changed = ledger::count_prunable(&app.store, cutoffs).await?;
    Ok(if json {
        json!({ "sweep": "prune", "dry_run": true, "finished_before": before, "changed": changed })
            .to_string()
            + "\n"
    } else {
        format!(
            "{changed} finished jobs would be pruned (finished before {before}, queue.retention_days = {}); nothing changed\n",
            app.settings.queue.retention_days
        )
    })
}
