//! Service tokens of `[[http.tokens]]`: each a digest and a scope, checked when the
//! configuration loads so that a bad entry stops the service rather than narrowing or
//! widening what a caller may do.

use serde::Deserialize;

use super::{ConfigError, HttpSettings};

/// One calling service's token: its SHA-256 digest (the token itself is never in the
/// configuration) and its scope.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceToken {
    /// Who holds it (`auth-service`): in logs, never the token.
    pub name: String,
    /// The hex SHA-256 digest of the token (`lifecycle token new` prints it).
    pub sha256: String,
    /// The job kinds it may enqueue, by slug or name; internal kinds are refused.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Whether its jobs may run as `"actor": "system"` (which skips the actor's guards).
    #[serde(default)]
    pub system: bool,
    /// The accounts it may enqueue for and read jobs of; absent: every account.
    #[serde(default)]
    pub accounts: Option<Vec<i64>>,
    /// Whether it may call `POST /v1/tokens/check`.
    #[serde(default)]
    pub check_tokens: bool,
    /// Whether it may scrape `GET /metrics` (a Prometheus token: `kinds = []`,
    /// `metrics = true` may read the metrics and do nothing else).
    #[serde(default)]
    pub metrics: bool,
}

impl ServiceToken {
    /// The digest, decoded.
    pub fn digest(&self) -> Result<[u8; 32], ConfigError> {
        let invalid = || {
            ConfigError::Token(
                self.name.clone(),
                "sha256 must be 64 hex digits (the SHA-256 digest of the token)".into(),
            )
        };
        let hex = self.sha256.trim();
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(invalid());
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(digest)
    }

    /// The stable names of its kinds; an unknown or internal kind is a configuration error,
    /// not a silently narrower scope.
    pub fn kind_names(&self) -> Result<Vec<&'static str>, ConfigError> {
        self.kinds
            .iter()
            .map(|kind| {
                let name = lifecycle_jobs::kind_name(kind).ok_or_else(|| {
                    ConfigError::Token(self.name.clone(), format!("unknown job kind {kind:?}"))
                })?;
                if !lifecycle_jobs::is_public(name) {
                    return Err(ConfigError::Token(
                        self.name.clone(),
                        format!("{kind} is an internal job kind: no token may enqueue it"),
                    ));
                }
                Ok(name)
            })
            .collect()
    }
}

impl HttpSettings {
    /// Checks every service token: a digest that decodes, known public kinds, a name.
    pub fn check_tokens(&self) -> Result<(), ConfigError> {
        for token in &self.tokens {
            if token.name.trim().is_empty() {
                return Err(ConfigError::Token(
                    token.name.clone(),
                    "every token needs a name".into(),
                ));
            }
            token.digest()?;
            token.kind_names()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::DEFAULTS;
    use super::*;
    use crate::config::Settings;

    #[test]
    fn service_tokens_parse_with_their_scope_and_bad_ones_are_refused() {
        let file = r#"
            [[http.tokens]]
            name = "auth-service"
            sha256 = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
            kinds = ["record-login", "user::record_activity"]
            accounts = [1, 2]
        "#;
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(config::File::from_str(file, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        let token = &settings.http.tokens[0];
        assert!(!token.system && !token.check_tokens);
        assert_eq!(token.accounts, Some(vec![1, 2]));
        assert_eq!(
            token.kind_names().unwrap(),
            ["user::record_login", "user::record_activity"]
        );
        assert_eq!(token.digest().unwrap()[0], 0x9f);
        settings.http.check_tokens().unwrap();

        let bad = |change: fn(&mut ServiceToken)| {
            let mut http = settings.http.clone();
            change(&mut http.tokens[0]);
            http.check_tokens().unwrap_err().to_string()
        };
        assert!(bad(|t| t.sha256 = "abc".into()).contains("64 hex digits"));
        assert!(bad(|t| t.sha256 = "zz".repeat(32)).contains("64 hex digits"));
        assert!(bad(|t| t.kinds = vec!["launch-rockets".into()]).contains("unknown job kind"));
        assert!(bad(|t| t.kinds = vec!["send-email".into()]).contains("internal job kind"));
        assert!(bad(|t| t.name = " ".into()).contains("needs a name"));
    }
}
