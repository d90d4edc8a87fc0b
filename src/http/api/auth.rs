//! Bearer tokens: the accepted ones held as SHA-256 digests ([`ApiTokens`]), each with what
//! it may do ([`TokenScope`]): its kinds, whether it may act as `system`, its accounts.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::ApiError;
use crate::config::{HttpSettings, Secret, ServiceToken};
use crate::store::ledger::JobRecord;

/// What a token may do. Resolved from the configuration once, at start.
#[derive(Debug)]
pub struct TokenScope {
    /// The token's name (`auth-service`), for logs; never the token.
    pub name: String,
    /// The kinds (stable names) it may enqueue and read.
    kinds: HashSet<&'static str>,
    /// Whether its jobs may run as `"actor": "system"`.
    system: bool,
    /// Its accounts; `None`: every account.
    accounts: Option<HashSet<i64>>,
    /// Whether it may call `POST /v1/tokens/check`.
    pub check_tokens: bool,
    /// Whether it may scrape `GET /metrics`.
    pub metrics: bool,
}

impl TokenScope {
    /// A development token of `http.api_tokens`: every public kind, `system`, every
    /// account, the token check.
    fn everything(name: String) -> Self {
        Self {
            name,
            kinds: lifecycle_jobs::PUBLIC_KINDS.iter().copied().collect(),
            system: true,
            accounts: None,
            check_tokens: true,
            metrics: true,
        }
    }

    fn of(token: &ServiceToken) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            name: token.name.clone(),
            kinds: token.kind_names()?.into_iter().collect(),
            system: token.system,
            accounts: token
                .accounts
                .as_ref()
                .map(|accounts| accounts.iter().copied().collect()),
            check_tokens: token.check_tokens,
            metrics: token.metrics,
        })
    }

    /// Whether it may enqueue jobs of `name` (a stable name). Internal kinds are refused
    /// to every token, naming the kind: only the service records them.
    pub fn may_enqueue(&self, name: &str) -> Result<(), ApiError> {
        if !lifecycle_jobs::is_public(name) {
            return Err(ApiError::Forbidden {
                field: Some("kind"),
                reason: format!(
                    "{name} is an internal job kind: only the service enqueues it, never over HTTP"
                ),
            });
        }
        if !self.kinds.contains(name) {
            return Err(ApiError::Forbidden {
                field: Some("kind"),
                reason: format!("this token may not enqueue {name} jobs"),
            });
        }
        Ok(())
    }

    /// Whether it may act for `account_id`.
    pub fn may_use_account(&self, account_id: i64) -> Result<(), ApiError> {
        match &self.accounts {
            Some(accounts) if !accounts.contains(&account_id) => Err(ApiError::Forbidden {
                field: Some("account_id"),
                reason: format!("this token may not enqueue jobs for account {account_id}"),
            }),
            _ => Ok(()),
        }
    }

    /// Whether it may send `"actor": "system"`, which skips the checks of a user actor.
    pub fn may_act_as_system(&self) -> Result<(), ApiError> {
        if self.system {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                field: Some("actor"),
                reason: "this token may not act as \"system\": name the user who acts".into(),
            })
        }
    }

    /// Whether it may see a job: one of its kinds, in one of its accounts. A job outside
    /// is answered as one that does not exist, so its existence leaks nothing.
    pub(super) fn may_read(&self, record: &JobRecord) -> bool {
        self.kinds.contains(record.kind.as_str())
            && match (&self.accounts, record.account_id) {
                (None, _) => true,
                (Some(accounts), Some(account_id)) => accounts.contains(&account_id),
                (Some(_), None) => false,
            }
    }
}

/// The SHA-256 digests of the accepted tokens, each with its scope: tokens are held only
/// as digests, in the configuration and in memory. Comparing digests takes the same time
/// whatever the length of the presented token, and the comparison itself is constant-time.
#[derive(Clone)]
pub struct ApiTokens(Arc<Vec<([u8; 32], Arc<TokenScope>)>>);

impl fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiTokens({} accepted)", self.0.len())
    }
}

impl ApiTokens {
    /// Development tokens only (every permission).
    pub fn new(tokens: &[Secret<String>]) -> Self {
        Self::from_settings(&HttpSettings {
            bind: String::new(),
            api_tokens: tokens.to_vec(),
            tokens: Vec::new(),
        })
    }

    /// The development tokens of `http.api_tokens` and the service tokens of
    /// `[[http.tokens]]`. A service token whose entry is invalid is left out (refused), not
    /// widened: `Settings::load` refuses such a file at start already.
    pub fn from_settings(http: &HttpSettings) -> Self {
        // An empty token would let `Authorization: Bearer ` in: never accepted.
        let development = http
            .api_tokens
            .iter()
            .map(|token| token.expose().trim())
            .filter(|token| !token.is_empty())
            .enumerate()
            .map(|(n, token)| {
                let scope = TokenScope::everything(format!("http.api_tokens[{n}]"));
                (digest(token), Arc::new(scope))
            });
        let service =
            http.tokens
                .iter()
                .filter_map(|token| match (token.digest(), TokenScope::of(token)) {
                    (Ok(digest), Ok(scope)) => Some((digest, Arc::new(scope))),
                    (Err(error), _) | (_, Err(error)) => {
                        tracing::error!(%error, "service token refused");
                        None
                    }
                });
        Self(Arc::new(development.chain(service).collect()))
    }

    /// The scope of `presented`, if it is one of the tokens; looks at every token,
    /// stopping at none.
    pub fn scope_of(&self, presented: &str) -> Option<Arc<TokenScope>> {
        let presented = digest(presented);
        self.0.iter().fold(None, |found, (accepted, scope)| {
            let matches = constant_time_eq(accepted, &presented);
            if matches && found.is_none() {
                Some(Arc::clone(scope))
            } else {
                found
            }
        })
    }

    /// Whether `presented` is one of the tokens.
    pub fn accepts(&self, presented: &str) -> bool {
        self.scope_of(presented).is_some()
    }
}

/// A fresh service token (256 random bits, hex, after a `lc_` prefix that secret scanners
/// can match) and the hex SHA-256 digest that `[[http.tokens]]` holds instead of it.
pub fn new_service_token() -> (Secret<String>, String) {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("lc_{}", hex::encode(bytes));
    let digest = hex::encode(digest(&token));
    (Secret::new(token), digest)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equality whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_non_empty_tokens() {
        let tokens = ApiTokens::new(&[Secret::new("s3cret".into()), Secret::new(" ".into())]);
        assert!(tokens.accepts("s3cret"));
        assert!(!tokens.accepts("s3cre"));
        assert!(!tokens.accepts("s3cret "));
        assert!(!tokens.accepts(""));
        assert!(!ApiTokens::new(&[]).accepts(""));
        assert_eq!(format!("{tokens:?}"), "ApiTokens(1 accepted)");
    }

    #[test]
    fn a_service_token_carries_its_scope() {
        let http = HttpSettings {
            bind: String::new(),
            api_tokens: vec![Secret::new("dev".into())],
            tokens: vec![ServiceToken {
                name: "auth-service".into(),
                sha256: lifecycle_jobs::sha256_hex("auth-secret"),
                kinds: vec!["record-login".into()],
                system: false,
                accounts: Some(vec![2]),
                check_tokens: false,
                metrics: false,
            }],
        };
        let tokens = ApiTokens::from_settings(&http);
        let auth = tokens.scope_of("auth-secret").unwrap();
        assert_eq!(auth.name, "auth-service");
        assert!(!auth.metrics, "metrics only when granted");
        assert!(auth.may_enqueue("user::record_login").is_ok());
        assert!(auth.may_enqueue("user::deactivate").is_err());
        assert!(auth.may_enqueue("mail::send").is_err());
        assert!(auth.may_use_account(2).is_ok());
        assert!(auth.may_use_account(1).is_err());
        assert!(auth.may_act_as_system().is_err());
        let dev = tokens.scope_of("dev").unwrap();
        assert!(dev.may_act_as_system().is_ok() && dev.check_tokens && dev.metrics);
        assert!(
            dev.may_enqueue("system::noop").is_err(),
            "internal for everyone"
        );
        assert!(tokens.scope_of("auth-secret ").is_none());
    }
}
