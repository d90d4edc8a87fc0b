use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{InvalidPayload, Job};

/// Deletes finished (done or dead) job records, with their errors, that finished more than
/// the retention (`queue.retention_days`) before `at`. Recorded by the scheduler, or run by
/// an operator (`lifecycle sweep prune`); never sent by a producer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PruneJobHistory {
    /// The scheduled tick the sweep runs for: the retention counts back from it.
    pub at: DateTime<Utc>,
}

impl Job for PruneJobHistory {
    const NAME: &'static str = "sweep::prune_job_history";
    const SLUG: &'static str = "prune-job-history";

    /// Every account: a sweep belongs to none (0).
    fn account_id(&self) -> i64 {
        0
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        Ok(())
    }
}
