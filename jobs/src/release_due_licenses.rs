use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{InvalidPayload, Job};

/// The safety net behind [`crate::ReleaseLicense`]: frees, in every account, each
/// `releasing` license whose release instant is at or before `at` (and not after the
/// service's clock), under the rule ReleaseLicense applies. Recorded by the scheduler, or
/// run by an operator (`lifecycle sweep release-licenses`); never sent by a producer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReleaseDueLicenses {
    /// The scheduled tick the sweep runs for: licenses due by then are freed.
    pub at: DateTime<Utc>,
}

impl Job for ReleaseDueLicenses {
    const NAME: &'static str = "sweep::release_due_licenses";
    const SLUG: &'static str = "release-due-licenses";

    /// Every account: a sweep belongs to none (0).
    fn account_id(&self) -> i64 {
        0
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        Ok(())
    }
}
