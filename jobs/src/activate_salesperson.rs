use serde::{Deserialize, Serialize};

use crate::validation::{country_code, positive_id};
use crate::{Actor, InvalidPayload, Job};

/// Makes an active user a salesperson: takes one seat of the account's license pool in
/// `country`, atomically (two jobs racing for the last seat: exactly one wins). Refused when
/// no seat is free.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActivateSalesperson {
    /// The account (tenant) of the user.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
    /// The user, who must be active.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub user_id: i64,
    /// Who asked for it.
    pub actor: Actor,
    /// ISO 3166-1 alpha-2 country of the license.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::country))]
    pub country: String,
}

impl Job for ActivateSalesperson {
    const NAME: &'static str = "user::activate_salesperson";
    const SLUG: &'static str = "activate-salesperson";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)?;
        positive_id("user_id", self.user_id)?;
        country_code("country", &self.country)
    }
}
