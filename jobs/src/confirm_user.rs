use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::validation::positive_id;
use crate::{InvalidPayload, Job};

/// How a sealed token starts: what follows is the hex SHA-256 of the secret.
const SEALED_PREFIX: &str = "sha256:";

/// The shortest and longest secret of a confirmation link, in bytes.
pub const TOKEN_LEN: std::ops::RangeInclusive<usize> = 16..=256;

/// The token exactly as [`ConfirmUser::validate`] accepts it: a secret of
/// [`TOKEN_LEN`] letters, digits, `-` and `_`, or `sha256:` and 64 hex digits (sealed).
pub fn token_pattern() -> String {
    format!(
        "^({SEALED_PREFIX}[0-9a-fA-F]{{64}}|[A-Za-z0-9_-]{{{},{}}})$",
        TOKEN_LEN.start(),
        TOKEN_LEN.end()
    )
}

/// Confirms a `pending` user with the secret of the single-use link they were emailed:
/// the user becomes `active` and the link is used up. An expired, reused or unknown link is
/// refused.
///
/// The secret is replaced by its SHA-256 digest ([`Job::seal`]) before the job is recorded,
/// so the queue never holds it in clear.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConfirmUser {
    /// The account (tenant) of the user.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub account_id: i64,
    /// The user confirming.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::id))]
    pub user_id: i64,
    /// The `token` parameter of the confirmation link.
    #[cfg_attr(feature = "utoipa", schema(schema_with = crate::validation::schema::confirmation_token))]
    pub token: String,
}

impl ConfirmUser {
    /// The hex SHA-256 of the link's secret, however the token is held (clear or sealed).
    pub fn token_digest(&self) -> String {
        match self.token.strip_prefix(SEALED_PREFIX) {
            Some(digest) => digest.to_string(),
            None => sha256_hex(&self.token),
        }
    }
}

/// Hex SHA-256 of a secret: how confirmation links are stored and compared.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

// The token is a secret: never print it, even in a debug dump of the job.
impl std::fmt::Debug for ConfirmUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmUser")
            .field("account_id", &self.account_id)
            .field("user_id", &self.user_id)
            .field("token", &"[redacted]")
            .finish()
    }
}

impl Job for ConfirmUser {
    const NAME: &'static str = "user::confirm";
    const SLUG: &'static str = "confirm-user";

    fn account_id(&self) -> i64 {
        self.account_id
    }

    fn validate(&self) -> Result<(), InvalidPayload> {
        positive_id("account_id", self.account_id)?;
        positive_id("user_id", self.user_id)?;
        let sealed = self.token.strip_prefix(SEALED_PREFIX);
        let valid = match sealed {
            Some(digest) => digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            None => {
                TOKEN_LEN.contains(&self.token.len())
                    && self
                        .token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }
        };
        if valid {
            Ok(())
        } else {
            Err(InvalidPayload::new(
                "token",
                "must be the token of a confirmation link (letters, digits, - and _)",
            ))
        }
    }

    fn seal(&mut self) {
        if !self.token.starts_with(SEALED_PREFIX) {
            self.token = format!("{SEALED_PREFIX}{}", sha256_hex(&self.token));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_keeps_only_the_digest() {
        let secret = "k3Jd9_aQ-xYz0123456789abcdef";
        let mut job = ConfirmUser {
            account_id: 1,
            user_id: 2,
            token: secret.into(),
        };
        let digest = job.token_digest();
        job.validate().unwrap();
        job.seal();
        assert_eq!(job.token, format!("sha256:{digest}"));
        assert_eq!(job.token_digest(), digest);
        job.validate().unwrap();
        job.seal();
        assert_eq!(job.token_digest(), digest, "sealing twice changes nothing");
        let json = serde_json::to_string(&job).unwrap();
        assert!(!json.contains(secret));
        assert!(!format!("{job:?}").contains("sha256"));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "short",
            "has space in it 1234",
            "sha256:abc",
            &"x".repeat(300),
        ] {
            let job = ConfirmUser {
                account_id: 1,
                user_id: 2,
                token: bad.into(),
            };
            assert_eq!(job.validate().unwrap_err().field, "token", "{bad:?}");
        }
    }
}
