use serde::{Deserialize, Serialize};

use crate::validation::positive_id;
use crate::{InvalidPayload, Job};

/// Frees the seat of a `releasing` license once its billing cycle has ended; a no-op for a
/// license already released or reclaimed. Scheduled by a deactivation for the release
/// instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReleaseLicense {
    /// The account (tenant) of the license.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
    /// The license whose seat is freed.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub license_id: i64,
}

impl Job for ReleaseLicense {
    const NAME: &'static str = "license::release";
    const SLUG: &'static str = "release-license";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)?;
        positive_id("license_id", self.license_id)
    }
}
