//! Typed configuration: `config/default.toml`, then the file given with `--config` (or
//! `config/$LIFECYCLE_ENV.toml`), then `LIFECYCLE__SECTION__KEY` variables, then the
//! conventional `DATABASE_URL`, `REDIS_URL` and `SMTP_URL`.
//!
//! * `settings`: the typed sections, and [`Secret`];
//! * `operators`: the dashboard's `[admin]` section and its operators;
//! * `tokens`: the service tokens of `[[http.tokens]]` and their checks;
//! * `load`: [`Settings::load`], the layers merged;
//! * `keys`: unknown keys and variables refused, with the nearest one suggested;
//! * `error`: [`ConfigError`], one line per refusal.
//!
//! Everything is re-exported here: callers name `crate::config::X`, never the file.

mod error;
mod keys;
mod load;
mod operators;
mod settings;
mod tokens;

pub use error::ConfigError;
pub use keys::nearest;
pub use load::API_TOKENS_VARIABLE;
pub use operators::{AdminSettings, Operator};
pub use settings::{
    DatabaseSettings, HttpSettings, KindRetry, LogFormat, LogSettings, MailSettings, MailTransport,
    PolicySettings, QueueBackend, QueueSettings, ScheduleSettings, Secret, Settings, SweepSchedule,
    SweepSettings,
};
pub use tokens::ServiceToken;
