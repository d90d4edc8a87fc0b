//! The jobs list's filter as a query string (or a form) carries it, read into the
//! operator's [`JobFilter`], and written back into the links that keep it (the next page,
//! "retry all matching"). A value that cannot be read is a 400 naming its field.

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use super::super::AdminError;
use super::super::view::encode;
use crate::store::admin::{JobCursor, JobFilter, JobState};

/// Longest text searched for: a search is a LIKE over payloads and errors.
const MAX_TEXT_CHARS: usize = 200;

/// `state=S&kind=K&account=A&user=U&text=T&from=F&to=T2&after=CURSOR`, every field optional
/// (an empty one, as a form sends it, is absent).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct FilterQuery {
    pub state: Option<String>,
    pub kind: Option<String>,
    pub account: Option<String>,
    pub user: Option<String>,
    pub text: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The job id of the previous page's last row.
    #[serde(skip_serializing)]
    pub after: Option<String>,
}

/// The states the list's select offers: the operator's states, `failed` (retrying or dead,
/// the default) and `any`.
pub const STATE_CHOICES: [&str; 9] = [
    "failed",
    "dead",
    "retrying",
    "queued",
    "scheduled",
    "running",
    "done",
    "discarded",
    "any",
];

fn given(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

impl FilterQuery {
    /// The state asked for; `failed` when none is.
    pub fn state(&self) -> &str {
        given(&self.state).unwrap_or("failed")
    }

    /// The operator's filter, or the first field that cannot be read.
    pub fn filter(&self) -> Result<JobFilter, AdminError> {
        let mut filter = JobFilter::default();
        match self.state() {
            "failed" => filter.failed = true,
            "any" => {}
            state => {
                filter.state = Some(state.parse::<JobState>().map_err(|_| {
                    AdminError::InvalidFilter(format!(
                        "unknown state {state:?}: one of {}",
                        STATE_CHOICES.join(", ")
                    ))
                })?);
            }
        }
        if let Some(kind) = given(&self.kind) {
            let name = lifecycle_jobs::kind_name(kind).ok_or_else(|| {
                AdminError::InvalidFilter(format!("unknown kind {kind:?}: one of the listed kinds"))
            })?;
            filter.kind = Some(name.to_string());
        }
        filter.account_id = number("account", given(&self.account))?;
        filter.user_id = number("user", given(&self.user))?;
        if let Some(text) = given(&self.text) {
            if text.chars().count() > MAX_TEXT_CHARS {
                return Err(AdminError::InvalidFilter(format!(
                    "text must be at most {MAX_TEXT_CHARS} characters"
                )));
            }
            filter.text = Some(text.to_string());
        }
        filter.created_from_ms = given(&self.from)
            .map(|from| instant("from", from, false))
            .transpose()?;
        filter.created_before_ms = given(&self.to)
            .map(|to| instant("to", to, true))
            .transpose()?;
        if let (Some(from), Some(before)) = (filter.created_from_ms, filter.created_before_ms)
            && from >= before
        {
            return Err(AdminError::InvalidFilter("from must be before to".into()));
        }
        Ok(filter)
    }

    /// The page to start after, if any.
    pub fn cursor(&self) -> Result<Option<JobCursor>, AdminError> {
        given(&self.after)
            .map(|after| {
                after.parse::<JobCursor>().map_err(|_| {
                    AdminError::InvalidFilter(format!(
                        "after must be a job id (the last row of the previous page), not {after:?}"
                    ))
                })
            })
            .transpose()
    }

    /// The filter as a query string (without `after`), its fields as given.
    pub fn query(&self) -> String {
        [
            ("state", &self.state),
            ("kind", &self.kind),
            ("account", &self.account),
            ("user", &self.user),
            ("text", &self.text),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter_map(|(name, value)| given(value).map(|value| format!("{name}={}", encode(value))))
        .collect::<Vec<_>>()
        .join("&")
    }
}

fn number(field: &str, text: Option<&str>) -> Result<Option<i64>, AdminError> {
    text.map(|text| {
        text.parse::<i64>().map_err(|_| {
            AdminError::InvalidFilter(format!("{field} must be a number, not {text:?}"))
        })
    })
    .transpose()
}

/// Epoch ms of `YYYY-MM-DD` (its start, or with `end_of_day` the start of the next day, so
/// `to` a date includes that day) or of `YYYY-MM-DDTHH:MM[:SS]`, what a `datetime-local`
/// input sends; UTC.
fn instant(field: &str, text: &str, end_of_day: bool) -> Result<i64, AdminError> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if end_of_day {
            date.succ_opt()
        } else {
            Some(date)
        };
        if let Some(start) = day.and_then(|day| day.and_hms_opt(0, 0, 0)) {
            return Ok(start.and_utc().timestamp_millis());
        }
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(at.and_utc().timestamp_millis());
        }
    }
    Err(AdminError::InvalidFilter(format!(
        "{field} must be a date, YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC), not {text:?}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> FilterQuery {
        let fields: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), (*value).into()))
            .collect();
        serde_json::from_value(fields.into()).unwrap()
    }

    fn refused(pairs: &[(&str, &str)]) -> String {
        match query(pairs).filter() {
            Err(AdminError::InvalidFilter(message)) => message,
            other => panic!("{pairs:?} accepted: {other:?}"),
        }
    }

    #[test]
    fn the_default_is_the_failed_jobs_and_any_lifts_it() {
        assert!(query(&[]).filter().unwrap().failed);
        assert!(query(&[("state", " ")]).filter().unwrap().failed);
        let any = query(&[("state", "any")]).filter().unwrap();
        assert!(!any.failed && any.state.is_none());
        let dead = query(&[("state", "dead")]).filter().unwrap();
        assert_eq!(dead.state, Some(JobState::Dead));
        assert!(!dead.failed);
    }

    #[test]
    fn each_bad_value_names_its_field() {
        assert!(refused(&[("state", "zombie")]).starts_with("unknown state \"zombie\""));
        assert!(refused(&[("kind", "nope")]).starts_with("unknown kind"));
        assert!(refused(&[("account", "abc")]).starts_with("account must be a number"));
        assert!(refused(&[("user", "1.5")]).starts_with("user must be a number"));
        assert!(refused(&[("from", "yesterday")]).starts_with("from must be a date"));
        assert!(refused(&[("to", "2026-13-01")]).starts_with("to must be a date"));
        assert!(refused(&[("text", &"x".repeat(201))]).starts_with("text must be at most"));
        assert_eq!(
            refused(&[("from", "2026-01-02"), ("to", "2026-01-01")]),
            "from must be before to"
        );
        assert!(matches!(
            query(&[("after", "page2")]).cursor(),
            Err(AdminError::InvalidFilter(message)) if message.starts_with("after must be a job id")
        ));
    }

    #[test]
    fn a_date_alone_spans_its_day_and_a_datetime_is_exact() {
        let day = query(&[("from", "2026-03-01"), ("to", "2026-03-01")])
            .filter()
            .unwrap();
        let start = 1_772_323_200_000; // 2026-03-01T00:00Z
        assert_eq!(day.created_from_ms, Some(start));
        assert_eq!(day.created_before_ms, Some(start + 86_400_000));
        let minutes = query(&[("from", "2026-03-01T10:30"), ("to", "2026-03-01T11:00:30")])
            .filter()
            .unwrap();
        assert_eq!(minutes.created_from_ms, Some(start + 37_800_000));
        assert_eq!(minutes.created_before_ms, Some(start + 39_630_000));
    }

    #[test]
    fn the_query_string_keeps_the_filter_as_given_and_drops_the_cursor() {
        let given = query(&[
            ("state", "dead"),
            ("kind", "user::create"),
            ("text", "a&b c"),
            ("account", ""),
            ("after", "0190"),
        ]);
        assert_eq!(
            given.query(),
            "state=dead&kind=user%3A%3Acreate&text=a%26b%20c"
        );
    }
}
