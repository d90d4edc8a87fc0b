//! ReleaseDueLicenses (issue 14): the safety net behind ReleaseLicense. A `releasing`
//! license whose ReleaseLicense job died would stay billed forever; this sweep frees every
//! one due by its tick, under the rule ReleaseLicense applies and with the lock it takes.
//!
//! Batched: the due licenses are walked by id, a batch per short transaction, each license
//! locked and read again before it is freed. A crash loses at most the batch under way; a
//! rerun finds only what is still `releasing`, so nothing is freed or audited twice.

use std::time::Instant;

use chrono::{DateTime, Utc};
use lifecycle_jobs::{Actor, Job, ReleaseDueLicenses};
use uuid::Uuid;

use super::sweep_result::{finish, sweep_handler};
use super::{JobError, Outcome, Runtime, release_license};
use crate::clock::Clock;
use crate::store::audit::AuditStamp;
use crate::store::{Store, licenses};

/// Licenses read, locked and freed per transaction.
const BATCH: i64 = 200;

sweep_handler!(ReleaseDueLicenses, run);

async fn run(rt: &Runtime<'_>, job: &ReleaseDueLicenses) -> Result<Outcome, JobError> {
    let released = release_due(rt.store, rt.clock, rt.job_id, job.at).await?;
    finish(rt, ReleaseDueLicenses::NAME, released, "licenses released").await
}

/// The instant licenses must be due by: the tick, never later than the clock (an operator's
/// `--at` in the future frees nothing early).
pub fn cutoff(clock: &Clock, at: DateTime<Utc>) -> DateTime<Utc> {
    at.min(clock.now())
}

/// Frees every `releasing` license of every account due by [`cutoff`], auditing each under
/// `job_id`; returns how many.
pub async fn release_due(
    store: &Store,
    clock: &Clock,
    job_id: Uuid,
    at: DateTime<Utc>,
) -> Result<u64, JobError> {
    let cutoff = cutoff(clock, at);
    let started = Instant::now();
    let (mut after, mut released) = (0, 0u64);
    loop {
        let mut tx = store.begin().await?;
        let batch = licenses::due_after(&mut tx, cutoff, after, BATCH).await?;
        for due in &batch {
            // Locked and read again, as ReleaseLicense does: a ReactivateUser that reclaimed
            // the seat first left it `active` (or releasing again, later): not touched.
            let Some(license) = licenses::find_locked(&mut tx, due.id).await? else {
                continue;
            };
            let still_due = license.state == "releasing"
                && license
                    .release_at
                    .is_some_and(|release_at| release_at <= cutoff);
            if !still_due {
                continue;
            }
            let stamp = AuditStamp {
                account_id: license.account_id,
                actor: Actor::System.to_string(),
                job_id,
                at: clock.now(),
            };
            if release_license::free_seat(&mut tx, &stamp, license.id, clock.now()).await? {
                released += 1;
            }
        }
        tx.commit().await?;
        let Some(last) = batch.last() else {
            break;
        };
        after = last.id;
        let rate = released as f64 / started.elapsed().as_secs_f64().max(1e-3);
        tracing::info!(released, per_sec = rate as u64, "releasing due licenses");
        if (batch.len() as i64) < BATCH {
            break;
        }
    }
    Ok(released)
}
