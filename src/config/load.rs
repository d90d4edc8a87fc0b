//! Loading: the layers (embedded default, the file, `LIFECYCLE__…` variables, the
//! conventional `DATABASE_URL`, `REDIS_URL`, `SMTP_URL`) merged, the keys checked, then the
//! settings and their tokens.

use std::path::Path;

use super::keys::{check_keys, check_variables, known_keys};
use super::{ConfigError, Settings};

/// The variable holding `http.api_tokens`, comma-separated.
pub const API_TOKENS_VARIABLE: &str = "LIFECYCLE__HTTP__API_TOKENS";

/// The documented reference, compiled in: the first layer, and the list of known keys.
pub(super) const DEFAULTS: &str = include_str!("../../config/default.toml");

impl Settings {
    /// Loads the layered configuration; `file` is the `--config` flag. Unknown keys, in a
    /// file or a `LIFECYCLE__…` variable, are refused rather than ignored.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let known = known_keys();
        check_variables(
            std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()),
            &known,
        )?;
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        } else if let Ok(environment) = std::env::var("LIFECYCLE_ENV") {
            // The full name, so that a missing file is reported as `config/nosuch.toml`.
            builder = builder.add_source(
                config::File::from(Path::new(&format!("config/{environment}.toml"))).required(true),
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
        let merged = builder.build()?;
        check_keys(&config::Source::collect(&merged)?, &known)?;
        let settings: Settings = merged.try_deserialize()?;
        settings.http.check_tokens()?;
        crate::schedule::Schedules::from_settings(&settings.schedule)?;
        settings.admin.check_operators()?;
        settings.sweeps.check()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MailTransport, QueueBackend};

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
                include_str!("../../config/production.toml"),
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
}
