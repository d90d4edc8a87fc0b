//! Jobs under a filter, newest first, a page at a time; counts for the overview.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use super::{Value, fetch_rows};
use crate::store::ledger::JobRecord;
use crate::store::{Dialect, Store, StoreError};

/// A state as operators name it. The ledger has fewer: `queued` rows are split by whether
/// they already failed (`retrying`) or wait for a time to come (`scheduled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Due now, never attempted.
    Queued,
    /// Never attempted, due later.
    Scheduled,
    Running,
    /// Failed at least once, waiting for its next attempt.
    Retrying,
    /// Out of attempts, or failed for good: kept until retried or discarded.
    Dead,
    Done,
    /// Given up on by an operator, with a reason.
    Discarded,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Scheduled,
        JobState::Running,
        JobState::Retrying,
        JobState::Dead,
        JobState::Done,
        JobState::Discarded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Dead => "dead",
            JobState::Done => "done",
            JobState::Discarded => "discarded",
        }
    }

    /// The state of a ledger row at `now_ms`.
    pub fn of(record: &JobRecord, now_ms: i64) -> JobState {
        match record.state.as_str() {
            "queued" if record.attempts > 0 => JobState::Retrying,
            "queued" if record.run_at_ms > now_ms => JobState::Scheduled,
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "dead" => JobState::Dead,
            "discarded" => JobState::Discarded,
            _ => JobState::Done,
        }
    }

    /// Its predicate over the ledger row; `now` is the placeholder of the current time.
    fn predicate(self, now: &str) -> String {
        match self {
            JobState::Queued => {
                format!("state = 'queued' AND attempts = 0 AND run_at_ms <= {now}")
            }
            JobState::Scheduled => {
                format!("state = 'queued' AND attempts = 0 AND run_at_ms > {now}")
            }
            JobState::Retrying => "state = 'queued' AND attempts > 0".to_string(),
            other => format!("state = '{}'", other.as_str()),
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "unknown state {text:?}: one of {}",
                    JobState::ALL.map(JobState::as_str).join(", ")
                )
            })
    }
}

/// Which jobs: every field present narrows the list.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct JobFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// Only the jobs that failed and are not done with: retrying or dead (the dashboard's
    /// default list). Narrows further when `state` is also given.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The tenant: an operator of one account sees only its jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<i64>,
    /// Jobs whose payload names the user (`user_id`), or that emitted an event about them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// Text in the payload or the last error, case-insensitive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Created at or after (epoch ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_from_ms: Option<i64>,
    /// Created before (epoch ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_before_ms: Option<i64>,
}

/// Where a page ends: the id of its last job. Job ids are UUIDv7, ordered by when they were
/// created, so the primary key is the keyset: a deep page seeks on it, and no index of its
/// own is written on every state change of every job (one cost Q1 a tenth of its rate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobCursor {
    pub id: Uuid,
}

impl fmt::Display for JobCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)
    }
}

impl FromStr for JobCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let id = text
            .parse()
            .map_err(|_| format!("invalid cursor {text:?}: expected a job id, as a page prints"))?;
        Ok(JobCursor { id })
    }
}

/// A page of jobs, newest first, and the cursor of the next one when there may be more.
#[derive(Clone, Debug)]
pub struct JobPage {
    pub jobs: Vec<JobRecord>,
    pub next: Option<JobCursor>,
}

const JOB_COLUMNS: &str = "id, kind, account_id, payload, caller_key AS idempotency_key,
        idempotency_key AS internal_key, state, attempts, max_attempts, run_at_ms, last_error,
        created_at_ms, finished_at_ms";

/// The WHERE clause of `filter` (and of `after`), with its values in placeholder order.
fn conditions(
    dialect: Dialect,
    filter: &JobFilter,
    after: Option<JobCursor>,
    now_ms: i64,
) -> (String, Vec<Value>) {
    let mut clauses = vec!["TRUE".to_string()];
    let mut values = Vec::new();
    let next = |value: Value, values: &mut Vec<Value>| {
        values.push(value);
        format!("${}", values.len())
    };
    if let Some(state) = filter.state {
        let now = if matches!(state, JobState::Queued | JobState::Scheduled) {
            next(Value::Int(now_ms), &mut values)
        } else {
            String::new()
        };
        clauses.push(state.predicate(&now));
    }
    if filter.failed {
        clauses.push("(state = 'dead' OR (state = 'queued' AND attempts > 0))".to_string());
    }
    if let Some(kind) = &filter.kind {
        clauses.push(format!(
            "kind = {}",
            next(Value::Text(kind.clone()), &mut values)
        ));
    }
    if let Some(account) = filter.account_id {
        clauses.push(format!(
            "account_id = {}",
            next(Value::Int(account), &mut values)
        ));
    }
    if let Some(user) = filter.user_id {
        // No index serves a user named in a payload: every row is read. The digits' search
        // first spares parsing the JSON of the rows that cannot name them (a quarter of the
        // cost at a million jobs); the JSON check keeps 4242 from matching 14242.
        let digits = next(Value::Text(user.to_string()), &mut values);
        let named = match dialect {
            Dialect::Postgres => format!(
                "(strpos(payload, {digits}) > 0 AND (payload::jsonb ->> 'user_id') = {digits})"
            ),
            Dialect::Sqlite => format!(
                "(instr(payload, {digits}) > 0 AND json_extract(payload, '$.user_id') = {})",
                next(Value::Int(user), &mut values)
            ),
        };
        let about = next(Value::Int(user), &mut values);
        clauses.push(format!(
            "({named} OR id IN (SELECT job_id FROM events WHERE user_id = {about}))"
        ));
    }
    if let Some(text) = &filter.text {
        let pattern = next(Value::Text(like_pattern(text)), &mut values);
        clauses.push(format!(
            "(LOWER(payload) LIKE {pattern} ESCAPE '\\'
              OR LOWER(COALESCE(last_error, '')) LIKE {pattern} ESCAPE '\\')"
        ));
    }
    if let Some(from) = filter.created_from_ms {
        clauses.push(format!(
            "created_at_ms >= {}",
            next(Value::Int(from), &mut values)
        ));
    }
    if let Some(before) = filter.created_before_ms {
        clauses.push(format!(
            "created_at_ms < {}",
            next(Value::Int(before), &mut values)
        ));
    }
    if let Some(cursor) = after {
        clauses.push(format!("id < {}", next(Value::Id(cursor.id), &mut values)));
    }
    (clauses.join(" AND "), values)
}

/// `%text%`, lower-cased, with LIKE's own characters taken literally.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Up to `limit` jobs matching `filter`, newest first, after `after`. A page seeks by the
/// cursor on the primary key (see [`JobCursor`]): page 500 costs what page 1 does.
pub async fn list_jobs(
    store: &Store,
    filter: &JobFilter,
    after: Option<JobCursor>,
    limit: i64,
    now_ms: i64,
) -> Result<JobPage, StoreError> {
    let (clause, mut values) = conditions(store.dialect(), filter, after, now_ms);
    values.push(Value::Int(limit.max(1)));
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE {clause}
          ORDER BY id DESC LIMIT ${}",
        values.len()
    );
    let jobs: Vec<JobRecord> = fetch_rows(store, sql, &values).await?;
    let next = (jobs.len() as i64 == limit.max(1))
        .then(|| jobs.last())
        .flatten()
        .map(|job| JobCursor { id: job.id });
    Ok(JobPage { jobs, next })
}

/// How many jobs match `filter`: the count an operator confirms before a bulk action.
pub async fn count_matching(
    store: &Store,
    filter: &JobFilter,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let (clause, values) = conditions(store.dialect(), filter, None, now_ms);
    let rows: Vec<(i64,)> = fetch_rows(
        store,
        format!("SELECT COUNT(*) FROM jobs WHERE {clause}"),
        &values,
    )
    .await?;
    Ok(rows.first().map_or(0, |(count,)| *count))
}

/// The next `limit` ids matching `filter` after `after`, newest first, with the cursor
/// to continue from: a bulk action walks the matches in bounded batches.
pub async fn matching_ids(
    store: &Store,
    filter: &JobFilter,
    after: Option<JobCursor>,
    limit: i64,
    now_ms: i64,
) -> Result<(Vec<Uuid>, Option<JobCursor>), StoreError> {
    let (clause, mut values) = conditions(store.dialect(), filter, after, now_ms);
    values.push(Value::Int(limit.max(1)));
    let sql = format!(
        "SELECT id FROM jobs WHERE {clause} ORDER BY id DESC LIMIT ${}",
        values.len()
    );
    let rows: Vec<(Uuid,)> = fetch_rows(store, sql, &values).await?;
    let next = rows.last().map(|(id,)| JobCursor { id: *id });
    Ok((rows.into_iter().map(|(id,)| id).collect(), next))
}
