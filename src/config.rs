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
    /// Bearer tokens the enqueue API accepts; none: the API refuses every request.
    #[serde(default)]
    pub api_tokens: Vec<Secret<String>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct LogSettings {
    pub filter: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(#[from] config::ConfigError),
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
        Ok(builder.build()?.try_deserialize()?)
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
    fn secrets_do_not_print() {
        let secret = Secret::new("postgres://app:hunter2@db/crm".to_string());
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }
}
