use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::validation::positive_id;
use crate::{InvalidPayload, Job};

/// A sign-in attempt reported by the auth service. A success resets the failure count and
/// sets the last login; a failure past the account's limit (default: more than 5 in a row)
/// locks the user (`failed_logins`) and emails a notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordLogin {
    /// The account (tenant) of the user.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
    /// Who tried to sign in.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub user_id: i64,
    /// Whether the password was right.
    pub succeeded: bool,
    /// When it happened (RFC 3339); the time the job runs when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

impl Job for RecordLogin {
    const NAME: &'static str = "user::record_login";
    const SLUG: &'static str = "record-login";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)?;
        positive_id("user_id", self.user_id)
    }
}
