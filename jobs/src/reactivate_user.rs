use serde::{Deserialize, Serialize};

use crate::validation::{country_code, positive_id};
use crate::{Actor, InvalidPayload, Job};

/// Reactivates a deactivated user: `active` again and off the blocklist. Nothing else comes
/// back (subscriptions, teams, opportunities and tasks stay where they went). With
/// `license_country` the user is a salesperson again, only if a seat is free there; a
/// license still `releasing` in that country is reclaimed instead of taking a second seat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReactivateUser {
    /// The account (tenant) of the user.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
    /// The user reactivated.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub user_id: i64,
    /// Who asked for it.
    pub actor: Actor,
    /// Make the user a salesperson again with a license in this country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::optional_country))]
    pub license_country: Option<String>,
}

impl Job for ReactivateUser {
    const NAME: &'static str = "user::reactivate";
    const SLUG: &'static str = "reactivate-user";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)?;
        positive_id("user_id", self.user_id)?;
        if let Some(country) = &self.license_country {
            country_code("license_country", country)?;
        }
        Ok(())
    }
}
