//! Paused job kinds, as the fetch path sees them: a set cached per process and read again
//! from `paused_kinds` every few seconds, so a claim costs no extra query. A pause takes
//! effect in every process within [`REFRESH_EVERY`], at once in the process that paused.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Queue, QueueError};
use crate::store::admin;

/// How stale a process's view of the paused kinds may be.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3);

/// A paused job delivered by Redis waits this long before it is looked at again.
pub const PAUSED_DELAY_MS: i64 = 5_000;

/// The paused kinds, and when they were read (`None`: never).
type ReadAt = (Option<Instant>, Arc<BTreeSet<String>>);

#[derive(Clone, Debug, Default)]
pub struct PausedKinds(Arc<Mutex<ReadAt>>);

impl PausedKinds {
    fn cached(&self) -> ReadAt {
        let guard = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (guard.0, Arc::clone(&guard.1))
    }

    fn store(&self, kinds: BTreeSet<String>) {
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = (Some(Instant::now()), Arc::new(kinds));
    }

    /// Marks the set as just read, so concurrent readers keep the old one meanwhile.
    fn begin_refresh(&self) -> bool {
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.0.is_some_and(|at| at.elapsed() < REFRESH_EVERY) {
            return false;
        }
        guard.0 = Some(Instant::now());
        true
    }
}

impl Queue {
    /// The kinds paused now, as this process knows them (at most [`REFRESH_EVERY`] old).
    /// A failed read keeps the last set: fetching goes on.
    pub async fn paused_kinds(&self) -> Arc<BTreeSet<String>> {
        let (read_at, kinds) = self.paused.cached();
        if read_at.is_some_and(|at| at.elapsed() < REFRESH_EVERY) || !self.paused.begin_refresh() {
            return kinds;
        }
        match self.refresh_paused_kinds().await {
            Ok(fresh) => fresh,
            Err(error) => {
                tracing::warn!(%error, "could not read the paused job kinds; keeping the last");
                kinds
            }
        }
    }

    /// Reads the paused kinds from the database now.
    pub async fn refresh_paused_kinds(&self) -> Result<Arc<BTreeSet<String>>, QueueError> {
        let kinds: BTreeSet<String> = admin::paused_kinds(&self.store)
            .await?
            .into_iter()
            .collect();
        self.paused.store(kinds);
        Ok(self.paused.cached().1)
    }
}
