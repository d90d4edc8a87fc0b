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
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub queue: QueueSettings,
    pub mail: MailSettings,
    pub policy: PolicySettings,
    pub http: HttpSettings,
    pub log: LogSettings,
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
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub filter: String,
}

/// A configuration the service refuses to start with. Each message is one line that names
/// the key, variable or file at fault: an operator reads it in a terminal or a log.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key no setting has: most often a typo that would otherwise leave the default in
    /// force without a word.
    #[error("configuration: unknown key {key}{}{}", in_origin(.origin), did_you_mean(.suggestion))]
    UnknownKey {
        key: String,
        /// The file the key came from, when known.
        origin: Option<String>,
        suggestion: Option<String>,
    },
    /// A `LIFECYCLE__…` variable that names no setting.
    #[error("configuration: unknown variable {variable}{}", did_you_mean(.suggestion))]
    UnknownVariable {
        variable: String,
        suggestion: Option<String>,
    },
    /// A file that is not valid TOML.
    #[error("configuration: {file}: {position}: {message}")]
    Syntax {
        file: String,
        /// `line L, column C`.
        position: String,
        message: String,
    },
    /// Anything else the `config` crate or a setting's type refuses (a missing file, a
    /// value of the wrong type), flattened to one line.
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("configuration: http.tokens {0:?}: {1}")]
    Token(String, String),
}

fn in_origin(origin: &Option<String>) -> String {
    origin
        .as_deref()
        .map(|origin| format!(" in {origin}"))
        .unwrap_or_default()
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_deref()
        .map(|suggestion| format!(": did you mean {suggestion}?"))
        .unwrap_or_default()
}

impl From<config::ConfigError> for ConfigError {
    fn from(error: config::ConfigError) -> Self {
        match error {
            config::ConfigError::FileParse { uri, cause } => syntax_error(
                uri.unwrap_or_else(|| "configuration".into()),
                &cause.to_string(),
            ),
            // The message alone: the crate's own source chain only repeats it.
            other => ConfigError::Invalid(one_line(&other.to_string())),
        }
    }
}

/// A TOML parse error is a snippet of several lines (`TOML parse error at line 1, column 7`,
/// the offending line with a caret under it, then the message); keeps the position and the
/// message.
fn syntax_error(file: String, text: &str) -> ConfigError {
    let mut lines = text.lines();
    let position = lines
        .next()
        .and_then(|first| first.strip_prefix("TOML parse error at "))
        .map(str::to_string);
    let Some(position) = position else {
        return ConfigError::Invalid(format!("{file}: {}", one_line(text)));
    };
    // The snippet's lines are ` |`, `1 | [queue` and `  |   ^`: a gutter then `|`.
    let is_snippet = |line: &str| {
        let gutter = line
            .trim_start()
            .trim_start_matches(|c: char| c.is_ascii_digit());
        gutter.trim_start().starts_with('|')
    };
    let message = lines
        .filter(|line| !line.trim().is_empty() && !is_snippet(line))
        .collect::<Vec<_>>()
        .join(" ");
    ConfigError::Syntax {
        file,
        position,
        message: one_line(&message),
    }
}

/// Collapses any run of whitespace (newlines included) to one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The variable holding `http.api_tokens`, comma-separated.
pub const API_TOKENS_VARIABLE: &str = "LIFECYCLE__HTTP__API_TOKENS";

/// The prefix of the variables the `config` crate maps to keys: `LIFECYCLE__A__B` is `a.b`.
const VARIABLE_PREFIX: &str = "LIFECYCLE__";

const DEFAULTS: &str = include_str!("../config/default.toml");

/// Tables whose entries are named by the operator (`[queue.kinds."mail::send"]`) or are a
/// list (`[[http.tokens]]`): any name is allowed there, and the entries' own keys are checked
/// by their types (`deny_unknown_fields`).
const OPEN_TABLES: &[&str] = &["queue.kinds", "http.tokens"];

/// Every key a setting has, tables included (`queue`, `queue.concurrency`). The embedded
/// default sets every key (it is the documented reference, and a key without a serde
/// default must be in it for it to load), so it is the list; the open tables are added
/// for the case they are empty there.
fn known_keys() -> std::collections::BTreeSet<String> {
    fn walk(
        prefix: &str,
        table: &config::Map<String, config::Value>,
        keys: &mut std::collections::BTreeSet<String>,
    ) {
        for (name, value) in table {
            let key = join(prefix, name);
            if let config::ValueKind::Table(inner) = &value.kind
                && !OPEN_TABLES.contains(&key.as_str())
            {
                walk(&key, inner, keys);
            }
            keys.insert(key);
        }
    }
    let defaults = config::Config::builder()
        .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
        .build()
        .and_then(|defaults| config::Source::collect(&defaults))
        .expect("the embedded default is valid TOML (a unit test loads it)");
    let mut keys = std::collections::BTreeSet::new();
    walk("", &defaults, &mut keys);
    keys.extend(OPEN_TABLES.iter().map(|table| table.to_string()));
    keys
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Refuses a key of the merged configuration that no setting has, naming the file it came
/// from and the nearest known key. Keys are visited in order, so the first reported is
/// always the same.
fn check_keys(
    table: &config::Map<String, config::Value>,
    known: &std::collections::BTreeSet<String>,
) -> Result<(), ConfigError> {
    fn walk(
        prefix: &str,
        table: &config::Map<String, config::Value>,
        known: &std::collections::BTreeSet<String>,
    ) -> Result<(), ConfigError> {
        let mut names: Vec<&String> = table.keys().collect();
        names.sort();
        for name in names {
            let value = &table[name];
            let key = join(prefix, name);
            if !known.contains(&key) {
                return Err(ConfigError::UnknownKey {
                    suggestion: nearest(&key, known.iter().map(String::as_str)).map(str::to_string),
                    origin: value.origin().map(str::to_string),
                    key,
                });
            }
            if let config::ValueKind::Table(inner) = &value.kind
                && !OPEN_TABLES.contains(&key.as_str())
            {
                walk(&key, inner, known)?;
            }
        }
        Ok(())
    }
    walk("", table, known)
}

/// Refuses a `LIFECYCLE__…` variable that names no setting (`LIFECYCLE__QUEUE__CONCURENCY`),
/// suggesting the nearest variable that does. A variable sets one value, so it must name a
/// value, not a table; inside `queue.kinds` any kind name is allowed (its keys are checked by
/// `KindRetry`).
fn check_variables(
    variables: impl IntoIterator<Item = String>,
    known: &std::collections::BTreeSet<String>,
) -> Result<(), ConfigError> {
    let is_value = |key: &str| {
        known.contains(key)
            && !known
                .range(format!("{key}.")..)
                .next()
                .is_some_and(|next| next.starts_with(&format!("{key}.")))
    };
    let as_key = |variable: &str| {
        variable[VARIABLE_PREFIX.len()..]
            .to_lowercase()
            .replace("__", ".")
    };
    let as_variable =
        |key: &str| format!("{VARIABLE_PREFIX}{}", key.to_uppercase().replace('.', "__"));
    let mut variables: Vec<String> = variables
        .into_iter()
        .filter(|variable| {
            variable.len() > VARIABLE_PREFIX.len()
                && variable[..VARIABLE_PREFIX.len()].eq_ignore_ascii_case(VARIABLE_PREFIX)
        })
        .collect();
    variables.sort();
    for variable in variables {
        let key = as_key(&variable);
        let kind_key = key
            .strip_prefix("queue.kinds.")
            .is_some_and(|rest| rest.split('.').count() == 2);
        if is_value(&key) && !OPEN_TABLES.contains(&key.as_str()) || kind_key {
            continue;
        }
        let values: Vec<String> = known
            .iter()
            .filter(|key| is_value(key) && !OPEN_TABLES.contains(&key.as_str()))
            .map(|key| as_variable(key))
            .collect();
        let suggestion = nearest(&variable, values.iter().map(String::as_str)).map(str::to_string);
        return Err(ConfigError::UnknownVariable {
            variable,
            suggestion,
        });
    }
    Ok(())
}

/// The candidate nearest to `wrong` by edit distance (ASCII case ignored), if it is near
/// enough to be a plausible typo: at most a third of the longer name, and at least 2.
pub fn nearest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wrong = wrong.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            (
                edit_distance(&wrong, &candidate.to_ascii_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, candidate)| {
            *distance <= (wrong.chars().count().max(candidate.chars().count()) / 3).max(2)
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance: insertions, deletions and substitutions, one each.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, b_char) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

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
    fn nearest_key_is_the_closest_by_edit_distance_and_only_if_close() {
        let keys = [
            "queue",
            "queue.concurrency",
            "queue.batch_size",
            "database.url",
        ];
        assert_eq!(edit_distance("concurency", "concurrency"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(nearest("queue.concurency", keys), Some("queue.concurrency"));
        assert_eq!(nearest("queues", keys), Some("queue"));
        assert_eq!(nearest("QUEUE.BATCH_SIZ", keys), Some("queue.batch_size"));
        assert_eq!(nearest("database.uri", keys), Some("database.url"));
        assert_eq!(nearest("something.else.entirely", keys), None);
        assert_eq!(nearest("x", std::iter::empty()), None);
    }

    #[test]
    fn unknown_variables_are_refused_with_the_nearest_one() {
        let known = known_keys();
        let check = |names: &[&str]| {
            check_variables(names.iter().map(|name| name.to_string()), &known)
                .map_err(|error| error.to_string())
        };
        check(&[
            "LIFECYCLE__QUEUE__CONCURRENCY",
            API_TOKENS_VARIABLE,
            "LIFECYCLE__HTTP__BIND",
            "LIFECYCLE__QUEUE__KINDS__X__MAX_ATTEMPTS",
            "LIFECYCLE_ENV",
            "LIFECYCLE_CONFIG",
            "DATABASE_URL",
            "PATH",
        ])
        .unwrap();
        let error = check(&["LIFECYCLE__QUEUE__CONCURENCY"]).unwrap_err();
        assert_eq!(
            error,
            "configuration: unknown variable LIFECYCLE__QUEUE__CONCURENCY: \
             did you mean LIFECYCLE__QUEUE__CONCURRENCY?"
        );
        // A table is not a value a variable can set.
        assert!(check(&["LIFECYCLE__QUEUE"]).is_err());
        assert!(check(&["LIFECYCLE__HTTP__TOKENS"]).is_err());
    }

    #[test]
    fn unknown_file_keys_are_refused_and_open_tables_keep_working() {
        let known = known_keys();
        let check = |file: &str| {
            let merged = config::Config::builder()
                .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
                .add_source(config::File::from_str(file, config::FileFormat::Toml))
                .build()
                .unwrap();
            check_keys(&config::Source::collect(&merged).unwrap(), &known)
                .map_err(|error| error.to_string())
        };
        check(include_str!("../config/production.toml")).unwrap();
        check(
            "[queue.kinds.\"user::create\"]\nmax_attempts = 3\n\
             [[http.tokens]]\nname = \"a\"\nsha256 = \"b\"\n",
        )
        .unwrap();
        assert_eq!(
            check("[queue]\nconcurency = 5\n").unwrap_err(),
            "configuration: unknown key queue.concurency: did you mean queue.concurrency?"
        );
        assert_eq!(
            check("[queues]\nconcurrency = 5\n").unwrap_err(),
            "configuration: unknown key queues: did you mean queue?"
        );
    }

    #[test]
    fn a_toml_syntax_error_is_one_line_with_its_position() {
        let error = config::Config::builder()
            .add_source(config::File::from_str(
                "[queue\nx = 1",
                config::FileFormat::Toml,
            ))
            .build()
            .unwrap_err();
        let error = syntax_error(
            "bad.toml".into(),
            &match error {
                config::ConfigError::FileParse { cause, .. } => cause.to_string(),
                other => panic!("{other}"),
            },
        );
        assert_eq!(
            error.to_string(),
            "configuration: bad.toml: line 1, column 7: unclosed table, expected `]`"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::new("postgres://app:hunter2@db/crm".to_string());
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }
}
