//! The nightly sweeps: internal kinds the scheduler and `lifecycle sweep` enqueue, never a
//! producer. Each judges every account (or one) by the instant `at`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::validation::positive_id;
use crate::{InvalidPayload, Job};

/// At most this many accounts confirmed in one run.
pub const MAX_CONFIRM_ACCOUNTS: usize = 1000;

macro_rules! sweep_kind {
    ($(#[$doc:meta])* $kind:ident, $name:literal, $slug:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
        #[serde(deny_unknown_fields)]
        pub struct $kind {
            /// The instant the sweep judges by (the scheduled tick, RFC 3339); when the
            /// service recorded the job if absent, so a rerun judges as the first run did.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub at: Option<DateTime<Utc>>,
            /// Only this account; every account when absent.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub account_id: Option<i64>,
            /// Accounts an administrator confirmed (`--confirm`): the breaker's hold on them
            /// is lifted and this run changes them whatever share it locks.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub confirm_accounts: Vec<i64>,
        }

        impl Job for $kind {
            const NAME: &'static str = $name;
            const SLUG: &'static str = $slug;

            /// The account filtered on, or 0 for a run over every account.
            fn account_id(&self) -> i64 {
                self.account_id.unwrap_or(0)
            }

            fn validate(&self) -> Result<(), InvalidPayload> {
                validate_scope(self.account_id, &self.confirm_accounts)
            }
        }
    };
}

sweep_kind!(
    /// Locks (`idle`) the active users with no sign of use for the account's idle days,
    /// emails them, and sends the staged warnings before; exemptions and the circuit breaker
    /// apply.
    LockIdleUsers,
    "sweep::lock_idle_users",
    "lock-idle-users"
);

sweep_kind!(
    /// Sets must-change-password on the users whose password is older than the account's
    /// maximum age, emails them, and sends the staged warnings before.
    ExpirePasswords,
    "sweep::expire_passwords",
    "expire-passwords"
);

fn validate_scope(account_id: Option<i64>, confirm_accounts: &[i64]) -> Result<(), InvalidPayload> {
    if let Some(account_id) = account_id {
        positive_id("account_id", account_id)?;
    }
    if confirm_accounts.len() > MAX_CONFIRM_ACCOUNTS {
        return Err(InvalidPayload::new(
            "confirm_accounts",
            format!("holds more than {MAX_CONFIRM_ACCOUNTS} accounts"),
        ));
    }
    for account in confirm_accounts {
        positive_id("confirm_accounts", *account)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_payload_sweeps_every_account_now() {
        let job: LockIdleUsers = crate::decode("{}").unwrap();
        assert_eq!(job, LockIdleUsers::default());
        assert_eq!(job.account_id(), 0);
    }

    #[test]
    fn bad_scopes_are_refused_naming_the_field() {
        let refusal = crate::decode::<ExpirePasswords>(r#"{"account_id": 0}"#).unwrap_err();
        assert_eq!(refusal.field, "account_id");
        let refusal =
            crate::decode::<LockIdleUsers>(r#"{"confirm_accounts": [1, -2]}"#).unwrap_err();
        assert_eq!(refusal.field, "confirm_accounts");
        let refusal = crate::decode::<LockIdleUsers>(r#"{"at": "yesterday"}"#).unwrap_err();
        assert_eq!(refusal.field, "at");
    }
}
