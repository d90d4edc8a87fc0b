use serde::{Deserialize, Serialize};

use crate::validation::positive_id;
use crate::{InvalidPayload, Job};

/// Does nothing: a canary to check that jobs flow, and the load of the queue benchmarks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Noop {
    /// The account the canary runs for.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
}

impl Job for Noop {
    const NAME: &'static str = "system::noop";
    const SLUG: &'static str = "noop";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)
    }
}
