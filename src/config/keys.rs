//! Strict keys: every key of the merged configuration and every `LIFECYCLE__…` variable
//! must name a setting; a typo is refused with the nearest key or variable that does.
//! The list of keys is read off the embedded default, which sets them all.

use super::ConfigError;
use super::load::DEFAULTS;

/// The prefix of the variables the `config` crate maps to keys: `LIFECYCLE__A__B` is `a.b`.
const VARIABLE_PREFIX: &str = "LIFECYCLE__";

/// Tables whose entries are named by the operator (`[queue.kinds."mail::send"]`) or are a
/// list (`[[http.tokens]]`, `[[admin.operators]]`): any name is allowed there, and the entries' own keys are checked
/// by their types (`deny_unknown_fields`).
/// `[schedule.<sweep>]` is open too: its sweeps' names are checked against the table of
/// sweeps when the schedule is read (`schedule::Schedules`).
const OPEN_TABLES: &[&str] = &["queue.kinds", "http.tokens", "schedule", "admin.operators"];

/// Every key a setting has, tables included (`queue`, `queue.concurrency`). The embedded
/// default sets every key (it is the documented reference, and a key without a serde
/// default must be in it for it to load), so it is the list; the open tables are added
/// for the case they are empty there.
pub(super) fn known_keys() -> std::collections::BTreeSet<String> {
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
pub(super) fn check_keys(
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
pub(super) fn check_variables(
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
        // `schedule.max_lateness_secs`, `schedule.<sweep>.cron`: checked when read.
        let schedule_key = key
            .strip_prefix("schedule.")
            .is_some_and(|rest| rest.split('.').count() <= 2);
        if is_value(&key) && !OPEN_TABLES.contains(&key.as_str()) || kind_key || schedule_key {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::API_TOKENS_VARIABLE;

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
        check(include_str!("../../config/production.toml")).unwrap();
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
}
