use serde::{Deserialize, Serialize};

use crate::validation::{email_address, positive_id};
use crate::{InvalidPayload, Job};

/// A purchase made with an email address, reported by billing. A deactivated customer with
/// that email who allowed it is reactivated; a blocklisted email is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PurchaseMade {
    /// The account (tenant) sold to.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
    /// The buyer's email address.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::email))]
    pub email: String,
    /// Billing's reference of the purchase, kept in the audit log.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::purchase_reference))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_reference: Option<String>,
}

/// The longest purchase reference accepted, in characters.
pub const MAX_REFERENCE_CHARS: usize = 200;

impl Job for PurchaseMade {
    const NAME: &'static str = "customer::purchase_made";
    const SLUG: &'static str = "purchase-made";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)?;
        email_address("email", &self.email)?;
        if let Some(reference) = &self.purchase_reference
            && (reference.chars().count() > MAX_REFERENCE_CHARS
                || reference.chars().any(char::is_control))
        {
            return Err(InvalidPayload::new(
                "purchase_reference",
                format!(
                    "must be at most {MAX_REFERENCE_CHARS} characters, without control characters"
                ),
            ));
        }
        Ok(())
    }
}
