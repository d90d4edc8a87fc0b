//! Jobs by kind and state, as the overview shows them and `lifecycle_jobs{state}` sums
//! them. Counting them reads the whole ledger (a quarter of a second at a million jobs on
//! PostgreSQL), so the serving process keeps the last count, taken by the metrics' refresh
//! every [`crate::metrics::LEDGER_EVERY`], and a big ledger's overview shows that one with
//! its time. A ledger up to [`EXACT_COUNTS_UP_TO`] rows is counted on every view: it costs
//! a few milliseconds there, and a page showing a job that ran a second ago should count it.

use std::sync::Arc;

use tokio::sync::RwLock;

use crate::store::admin::{self, KindStateCount};
use crate::store::{Store, StoreError};

/// Up to this many rows (as the database estimates them) the overview counts on each view.
pub const EXACT_COUNTS_UP_TO: i64 = 100_000;

/// One count of the ledger by kind and state, and when (job clock, epoch ms) it was taken.
#[derive(Clone, Debug)]
pub struct JobCounts {
    pub rows: Vec<KindStateCount>,
    pub at_ms: i64,
}

impl JobCounts {
    /// Counts the ledger now.
    pub async fn read(store: &Store, now_ms: i64) -> Result<Self, StoreError> {
        Ok(JobCounts {
            rows: admin::counts_by_kind_and_state(store, now_ms).await?,
            at_ms: now_ms,
        })
    }

    /// Jobs in `state`, all kinds together.
    pub fn in_state(&self, state: &str) -> i64 {
        self.rows
            .iter()
            .filter(|row| row.state == state)
            .map(|row| row.jobs)
            .sum()
    }
}

/// The last count the serving process took.
#[derive(Debug, Default)]
pub struct KeptCounts {
    last: RwLock<Option<Arc<JobCounts>>>,
}

impl KeptCounts {
    pub async fn keep(&self, counts: JobCounts) {
        *self.last.write().await = Some(Arc::new(counts));
    }

    /// The counts the overview shows, and whether they were taken just now: counted now on
    /// a ledger of up to [`EXACT_COUNTS_UP_TO`] rows or when none was kept yet, else the
    /// last one kept.
    pub async fn for_overview(
        &self,
        store: &Store,
        now_ms: i64,
    ) -> Result<(Arc<JobCounts>, bool), StoreError> {
        if admin::ledger_rows_estimate(store).await? > EXACT_COUNTS_UP_TO
            && let Some(kept) = self.last.read().await.clone()
        {
            return Ok((kept, false));
        }
        let counts = Arc::new(JobCounts::read(store, now_ms).await?);
        *self.last.write().await = Some(Arc::clone(&counts));
        Ok((counts, true))
    }
}
