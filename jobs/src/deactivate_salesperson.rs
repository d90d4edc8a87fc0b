use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::validation::positive_id;
use crate::{Actor, InvalidPayload, Job};

/// Removes a user's salesperson role while the user keeps platform access.
///
/// The license goes `releasing` and stays billed until the end of the account's billing
/// cycle, then is freed; the user leaves every playbook; contacts are unassigned (or kept,
/// by account policy, or moved to `reassign_contacts_to`); open tasks are unassigned and
/// marked transferable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeactivateSalesperson {
    /// The account (tenant) of the user.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
    /// The salesperson whose role is removed.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub user_id: i64,
    /// Who asked for it.
    pub actor: Actor,
    /// An active user of the same account who receives the contacts, instead of the
    /// account's contacts policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::optional_id))]
    pub reassign_contacts_to: Option<i64>,
    /// When the producer was asked for it (RFC 3339): the license is billed to the end of
    /// the billing cycle running then, however late the job runs (a backlog, a retry).
    /// Without it, the time the service recorded the job. Refused when more than 5 minutes
    /// ahead of the service's clock at enqueue, or more than 35 days before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<DateTime<Utc>>,
}

impl Job for DeactivateSalesperson {
    const NAME: &'static str = "user::deactivate_salesperson";
    const SLUG: &'static str = "deactivate-salesperson";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn requested_at(&self) -> Option<DateTime<Utc>> {
        self.requested_at
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)?;
        positive_id("user_id", self.user_id)?;
        if let Some(to) = self.reassign_contacts_to {
            positive_id("reassign_contacts_to", to)?;
            if to == self.user_id {
                return Err(InvalidPayload::new(
                    "reassign_contacts_to",
                    "must be another user than the one deactivated",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode;

    #[test]
    fn decodes_a_valid_payload() {
        let job: DeactivateSalesperson =
            decode(r#"{"account_id":1,"user_id":2,"actor":"system"}"#).unwrap();
        assert_eq!(job.actor, Actor::System);
        assert_eq!(job.reassign_contacts_to, None);
    }

    #[test]
    fn names_the_missing_field() {
        let err = decode::<DeactivateSalesperson>(r#"{"account_id":1,"actor":3}"#).unwrap_err();
        assert_eq!(err.field, "user_id");
    }

    #[test]
    fn names_the_bad_id() {
        let err = decode::<DeactivateSalesperson>(r#"{"account_id":1,"user_id":-4,"actor":3}"#)
            .unwrap_err();
        assert_eq!(err.field, "user_id");
        assert!(err.reason.contains("positive"), "{err}");
    }

    #[test]
    fn refuses_unknown_fields_and_malformed_json() {
        let err =
            decode::<DeactivateSalesperson>(r#"{"account_id":1,"user_id":2,"actor":3,"usr":1}"#)
                .unwrap_err();
        assert_eq!(err.field, "usr");
        let err = decode::<DeactivateSalesperson>("{not json").unwrap_err();
        assert_eq!(err.field, "payload");
    }

    #[test]
    fn refuses_oversized_payloads() {
        let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(crate::MAX_PAYLOAD_BYTES));
        let err = decode::<DeactivateSalesperson>(&huge).unwrap_err();
        assert_eq!(err.field, "payload");
        assert!(err.reason.contains("limit"));
    }

    #[test]
    fn refuses_reassigning_to_the_same_user() {
        let err = decode::<DeactivateSalesperson>(
            r#"{"account_id":1,"user_id":2,"actor":3,"reassign_contacts_to":2}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "reassign_contacts_to");
    }
}
