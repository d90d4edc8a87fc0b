use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::validation::positive_id;
use crate::{InvalidPayload, Job};

/// Where a sign of use came from. Each counts as activity for the idle-lock sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActivitySource {
    /// A sign-in to the web app.
    UiLogin,
    /// A call with the user's API token.
    Api,
    /// The mobile app.
    Mobile,
    /// An integration (email, calendar) synced on the user's behalf.
    IntegrationSync,
}

/// A sign of use: moves the user's last-activity time forward (never back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordActivity {
    /// The account (tenant) of the user.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
    /// The active user.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub user_id: i64,
    /// What the activity was.
    pub source: ActivitySource,
    /// When it happened (RFC 3339); the time the job runs when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

impl Job for RecordActivity {
    const NAME: &'static str = "user::record_activity";
    const SLUG: &'static str = "record-activity";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)?;
        positive_id("user_id", self.user_id)
    }
}
