use serde::{Deserialize, Serialize};

use crate::validation::{country_code, email_address, language, person_name, positive_id};
use crate::{Actor, InvalidPayload, Job};

/// Whether a user works for the account or buys from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    /// Staff of the account: administrators, salespeople.
    #[default]
    Employee,
    /// A customer with a login (subscriptions, purchases).
    Customer,
}

impl UserKind {
    /// The stored form: `employee` or `customer`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::Employee => "employee",
            UserKind::Customer => "customer",
        }
    }
}

/// Creates a user in `pending` and emails them a temporary password and a single-use
/// confirmation link that expires. Refused when the email belongs to a user of the account
/// or is on its blocklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// The account (tenant) the user joins.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
    /// Who asked for it: `system` or a user allowed to manage users.
    pub actor: Actor,
    /// Given name.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::person_name))]
    pub first_name: String,
    /// Surname.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::person_name))]
    pub last_name: String,
    /// Login and contact address; unique in the account whatever the case.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::email))]
    pub email: String,
    /// ISO 3166-1 alpha-2 country code, upper case (`ES`).
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::country))]
    pub country: String,
    /// `en`, `es`, `fr` or `pt`: the language of the user's emails.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::language))]
    pub language: String,
    /// A role of the same account.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub role_id: i64,
    /// A team of the same account, which the user joins.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub team_id: i64,
    /// A user of the same account whose individual permissions the new user gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::optional_id))]
    pub copy_permissions_from: Option<i64>,
    /// The user may use the sales simulator only, not the platform.
    #[serde(default)]
    pub simulator_only: bool,
    /// Employee (default) or customer.
    #[serde(default)]
    pub kind: UserKind,
}

impl Job for CreateUser {
    const NAME: &'static str = "user::create";
    const SLUG: &'static str = "create-user";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)?;
        person_name("first_name", &self.first_name)?;
        person_name("last_name", &self.last_name)?;
        email_address("email", &self.email)?;
        country_code("country", &self.country)?;
        language("language", &self.language)?;
        positive_id("role_id", self.role_id)?;
        positive_id("team_id", self.team_id)?;
        if let Some(from) = self.copy_permissions_from {
            positive_id("copy_permissions_from", from)?;
        }
        Ok(())
    }
}
