//! The settings types, one per section of `config/default.toml`: what the rest of the
//! service reads. `deny_unknown_fields` everywhere, so a misspelt key inside a typed table
//! fails to load instead of leaving a default in force.

use std::fmt;

use serde::Deserialize;

use super::{AdminSettings, ServiceToken};

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
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub queue: QueueSettings,
    pub mail: MailSettings,
    pub policy: PolicySettings,
    pub sweeps: SweepSettings,
    pub http: HttpSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    pub schedule: ScheduleSettings,
}

/// `[schedule]`: when the sweeps fire (see `crate::schedule`).
#[derive(Clone, Debug, Deserialize)]
pub struct ScheduleSettings {
    /// A tick missed (every process down) runs late only within this many seconds.
    pub max_lateness_secs: u64,
    /// `[schedule.<sweep>]`, by sweep name; a sweep left out keeps its default.
    #[serde(flatten)]
    pub sweeps: std::collections::BTreeMap<String, SweepSchedule>,
}

/// `[schedule.<sweep>]`: a key left out keeps the sweep's default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSchedule {
    /// A cron expression (5 fields, or 6 with seconds first); blank disables the sweep.
    pub cron: Option<String>,
    /// An IANA time zone (`Europe/Madrid`) the expression is read in.
    pub time_zone: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
    /// Done and discarded jobs are deleted from the ledger this many days after they
    /// finished.
    pub retention_days: u32,
    /// Dead jobs are kept this many days (for an operator to retry or discard), then deleted.
    pub dead_retention_days: u32,
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Consecutive failed sign-ins allowed; the next one locks the user.
    pub failed_login_limit: u32,
}

/// The nightly sweeps' rules (`[sweeps]`): defaults where an account sets none of its own
/// (`accounts.idle_days`, `accounts.password_max_age_days`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSettings {
    /// Days without any sign of use after which an active user is locked (`idle`).
    pub idle_days: u32,
    /// Days a password lasts; then the user must change it at the next sign-in.
    pub password_max_age_days: u32,
    /// Days after creation during which a user is never idle-locked.
    pub new_user_grace_days: u32,
    /// Days before a lock or an expiry when a warning is emailed, one per stage.
    pub warning_days: Vec<u32>,
    /// A run that would lock more than this share of an account's active users locks nobody
    /// there and holds the account until an administrator confirms.
    pub breaker_share: f64,
    /// Users read and changed per statement and transaction.
    pub batch_size: u32,
}

impl SweepSettings {
    /// Refuses values no sweep can work with, naming the key.
    pub fn check(&self) -> Result<(), super::ConfigError> {
        let invalid = |what: String| Err(super::ConfigError::Invalid(what));
        if !(self.breaker_share > 0.0 && self.breaker_share <= 1.0) {
            return invalid(format!(
                "sweeps.breaker_share must be above 0 and at most 1, not {}",
                self.breaker_share
            ));
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return invalid(format!(
                "sweeps.batch_size must be between 1 and 10000, not {}",
                self.batch_size
            ));
        }
        for (key, days) in [
            ("idle_days", self.idle_days),
            ("password_max_age_days", self.password_max_age_days),
        ] {
            if days == 0 {
                return invalid(format!("sweeps.{key} must be at least 1 day"));
            }
        }
        if let Some(days) = self
            .warning_days
            .iter()
            .find(|days| **days == 0 || **days > 365)
        {
            return invalid(format!(
                "sweeps.warning_days must hold days between 1 and 365, not {days}"
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub filter: String,
    /// `text` for people, `json` (one object per line) for log shippers.
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_settings_out_of_range_are_refused_naming_the_key() {
        let valid = Settings::load(None).unwrap().sweeps;
        assert!(valid.check().is_ok());
        let refused = |change: fn(&mut SweepSettings)| {
            let mut sweeps = valid.clone();
            change(&mut sweeps);
            sweeps.check().unwrap_err().to_string()
        };
        assert!(refused(|s| s.breaker_share = 0.0).contains("sweeps.breaker_share"));
        assert!(refused(|s| s.breaker_share = 1.5).contains("sweeps.breaker_share"));
        assert!(refused(|s| s.batch_size = 0).contains("sweeps.batch_size"));
        assert!(refused(|s| s.idle_days = 0).contains("sweeps.idle_days"));
        assert!(refused(|s| s.warning_days = vec![14, 0]).contains("sweeps.warning_days"));
    }

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::new("postgres://app:hunter2@db/crm".to_string());
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }
}
