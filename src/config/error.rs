//! [`ConfigError`]: every refusal as one line naming the key, variable or file at fault,
//! including the `config` crate's own errors (a TOML snippet flattened to its position
//! and message).

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
    #[error("configuration: admin.operators {0:?}: {1}")]
    Operator(String, String),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
