use serde::{Deserialize, Serialize};

use crate::validation::positive_id;
use crate::{Actor, InvalidPayload, Job};

/// What lifts a lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UnlockVia {
    /// An administrator unlocks the user: any lock.
    #[default]
    Admin,
    /// The auth service verified a password reset: lifts a `failed_logins` lock only.
    PasswordReset,
}

/// `locked -> active` with the failed-login counter reset; a user locked for inactivity
/// gets a fresh activity clock. The user is emailed that the account is unlocked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UnlockUser {
    /// The account (tenant) of the user.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
    /// The locked user.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub user_id: i64,
    /// Who asked for it: an administrator, or `system` for a verified password reset.
    pub actor: Actor,
    /// `admin` (default) or `password_reset`.
    #[serde(default)]
    pub via: UnlockVia,
}

impl Job for UnlockUser {
    const NAME: &'static str = "user::unlock";
    const SLUG: &'static str = "unlock-user";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)?;
        positive_id("user_id", self.user_id)
    }
}
