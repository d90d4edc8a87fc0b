//! Typed configuration: `config/default.toml`, then the file given with `--config` (or
//! `config/$LIFECYCLE_ENV.toml`), then `LIFECYCLE__SECTION__KEY` variables, then the
//! conventional `DATABASE_URL`, `REDIS_URL` and `SMTP_URL`.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

/// A value that never prints: connection URLs with passwords, tokens.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub queue: QueueSettings,
    pub mail: MailSettings,
    pub policy: PolicySettings,
    pub http: HttpSettings,
    pub log: LogSettings,
}

#[derive(Clone, Debug, Deserialize)]
pub struct DatabaseSettings {
    pub url: Secret<String>,
    pub max_connections: u32,
}

/// Where queued jobs travel: `database` (the ledger table itself: the embedded default, or
/// PostgreSQL alone) or `redis` (Streams, for many workers on many machines).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    Database,
    Redis,
}

#[derive(Clone, Debug, Deserialize)]
pub struct QueueSettings {
    pub backend: QueueBackend,
    pub redis_url: Secret<String>,
    pub namespace: String,
    pub concurrency: usize,
    pub batch_size: usize,
    pub poll_interval_ms: u64,
    pub visibility_timeout_secs: u64,
    /// How often each worker process records that it is alive.
    pub heartbeat_interval_secs: u64,
    /// A process silent this long is dead: another puts its jobs back at once.
    pub heartbeat_timeout_secs: u64,
    /// How often a worker makes Redis hold every job the ledger says is queued.
    pub reconcile_interval_secs: u64,
    /// Finished (done or dead) jobs are deleted from the ledger this many days after they
    /// finished.
    pub retention_days: u32,
    /// The Redis stream completed changes are published to.
    pub events_stream: String,
    /// About how many events the stream keeps (older ones are trimmed).
    pub events_max_len: usize,
    pub shutdown_timeout_secs: u64,
    pub max_attempts: u32,
    /// Retry policies of particular job kinds, by name (`[queue.kinds."mail::send"]`); what
    /// a kind leaves out comes from the keys above.
    #[serde(default)]
    pub kinds: std::collections::HashMap<String, KindRetry>,
    pub backoff_base_ms: u64,
    pub backoff_cap_secs: u64,
}

/// The retry policy of one job kind; each key left out takes the queue's.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KindRetry {
    pub max_attempts: Option<u32>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_cap_secs: Option<u64>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    File,
    Smtp,
}

#[derive(Clone, Debug, Deserialize)]
pub struct MailSettings {
    pub transport: MailTransport,
    pub folder: String,
    pub smtp_url: Secret<String>,
    pub from: String,
    /// Seconds an SMTP connection or command may take before the attempt fails (and is
    /// retried).
    pub timeout_secs: u64,
    /// The page a confirmation link opens; `?account=..&user=..&token=..` is appended.
    pub confirm_url: String,
    /// How long a confirmation link works after it is sent.
    pub confirmation_ttl_hours: u32,
}

/// Account policies where the account sets none of its own.
#[derive(Clone, Debug, Deserialize)]
pub struct PolicySettings {
    /// Consecutive failed sign-ins allowed; the next one locks the user.
    pub failed_login_limit: u32,
}

#[derive(Clone, Debug, Deserialize)]
pub struct HttpSettings {
    pub bind: String,
    /// Plain bearer tokens with every permission (every public kind, `system`, every
    /// account, the token check): for development and tests. Production uses `tokens`.
    #[serde(default)]
    pub api_tokens: Vec<Secret<String>>,
    /// Service tokens, each stored as its digest with what it may do (`[[http.tokens]]`).
    #[serde(default)]
    pub tokens: Vec<ServiceToken>,
}

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

#[derive(Clone, Debug, Deserialize)]
pub struct LogSettings {
    pub filter: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(#[from] config::ConfigError),
    #[error("configuration: http.tokens {0:?}: {1}")]
    Token(String, String),
}

/// The variable holding `http.api_tokens`, comma-separated.
pub const API_TOKENS_VARIABLE: &str = "LIFECYCLE__HTTP__API_TOKENS";

const DEFAULTS: &str = include_str!("../config/default.toml");

impl Settings {
    /// Loads the layered configuration; `file` is the `--config` flag.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        } else if let Ok(environment) = std::env::var("LIFECYCLE_ENV") {
            builder = builder.add_source(
                config::File::with_name(&format!("config/{environment}")).required(true),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix("LIFECYCLE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        // A list from one variable, comma-separated. Read here rather than through the
        // `Environment` source because its `try_parsing` would turn a token that looks like a
        // number or a boolean into a scalar, which does not deserialize as a list.
        if let Ok(tokens) = std::env::var(API_TOKENS_VARIABLE) {
            let tokens: Vec<String> = tokens
                .split(',')
                .map(str::trim)
                .filter(|token| !token.is_empty())
                .map(str::to_string)
                .collect();
            builder = builder.set_override("http.api_tokens", tokens)?;
        }
        for (variable, key) in [
            ("DATABASE_URL", "database.url"),
            ("REDIS_URL", "queue.redis_url"),
            ("SMTP_URL", "mail.smtp_url"),
        ] {
            if let Ok(value) = std::env::var(variable) {
                builder = builder.set_override(key, value)?;
            }
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.http.check_tokens()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_needs_no_server() {
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        assert!(settings.database.url.expose().starts_with("sqlite:"));
        assert_eq!(settings.queue.backend, QueueBackend::Database);
        assert_eq!(settings.mail.transport, MailTransport::File);
        assert!(
            settings.http.api_tokens.is_empty(),
            "no token: the API is closed"
        );
    }

    #[test]
    fn production_file_parses_and_uses_servers() {
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(config::File::from_str(
                include_str!("../config/production.toml"),
                config::FileFormat::Toml,
            ))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        assert!(settings.database.url.expose().starts_with("postgres://"));
        assert_eq!(settings.queue.backend, QueueBackend::Redis);
        assert_eq!(settings.mail.transport, MailTransport::Smtp);
    }

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

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::new("postgres://app:hunter2@db/crm".to_string());
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }
}
