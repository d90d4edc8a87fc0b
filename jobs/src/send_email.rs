use serde::{Deserialize, Serialize};

use crate::validation::positive_id;
use crate::{InvalidPayload, Job};

/// Delivers one recorded email message. The change that called for it recorded the message
/// in its own transaction; this job only sends it, so an SMTP outage delays the email
/// without redoing the change. A message is sent once, however often the job runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendEmail {
    /// The account (tenant) of the recipient.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
    /// The recorded message.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub email_id: i64,
}

impl Job for SendEmail {
    const NAME: &'static str = "mail::send";
    const SLUG: &'static str = "send-email";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)?;
        positive_id("email_id", self.email_id)
    }
}
