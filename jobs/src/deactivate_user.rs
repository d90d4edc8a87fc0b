use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::validation::positive_id;
use crate::{Actor, InvalidPayload, Job};

/// Deactivates a user: no more logins, every session and token revoked, integrations
/// disabled, subscriptions canceled, the salesperson effects when the user holds a license,
/// opportunities handed over, teams left, the email blocklisted unless
/// `allow_reactivation_on_purchase`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeactivateUser {
    /// The account (tenant) of the user.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
    /// The user deactivated.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub user_id: i64,
    /// Who asked for it.
    pub actor: Actor,
    /// An active user of the same account who receives the opportunities (and contacts);
    /// without it they go to the leader of the user's first team, else of the account's
    /// first team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::optional_id))]
    pub reassign_to: Option<i64>,
    /// Leave the email off the account's blocklist, so a later purchase can reactivate
    /// the user.
    #[serde(default)]
    pub allow_reactivation_on_purchase: bool,
    /// When the producer was asked for it (RFC 3339): the license is billed to the end of
    /// the billing cycle running then, however late the job runs (a backlog, a retry).
    /// Without it, the time the service recorded the job. Refused when more than 5 minutes
    /// ahead of the service's clock at enqueue, or more than 35 days before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<DateTime<Utc>>,
}

impl Job for DeactivateUser {
    const NAME: &'static str = "user::deactivate";
    const SLUG: &'static str = "deactivate-user";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn requested_at(&self) -> Option<DateTime<Utc>> {
        self.requested_at
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)?;
        positive_id("user_id", self.user_id)?;
        if let Some(to) = self.reassign_to {
            positive_id("reassign_to", to)?;
            if to == self.user_id {
                return Err(InvalidPayload::new(
                    "reassign_to",
                    "must be another user than the one deactivated",
                ));
            }
        }
        Ok(())
    }
}
