use serde::{Deserialize, Serialize};

use crate::validation::positive_id;
use crate::{Actor, InvalidPayload, Job};

/// Moves a user's contacts, open tasks and opportunities to another, active user of the
/// same account. Completed tasks stay where they are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReassignRecords {
    /// The account (tenant) of both users.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
    /// Whose records move.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub from_user_id: i64,
    /// Who receives them; must be active.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub to_user_id: i64,
    /// Who asked for it.
    pub actor: Actor,
}

impl Job for ReassignRecords {
    const NAME: &'static str = "records::reassign";
    const SLUG: &'static str = "reassign-records";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)?;
        positive_id("from_user_id", self.from_user_id)?;
        positive_id("to_user_id", self.to_user_id)?;
        if self.from_user_id == self.to_user_id {
            return Err(InvalidPayload::new(
                "to_user_id",
                "must differ from from_user_id",
            ));
        }
        Ok(())
    }
}
