//! The dashboard's reads: counts for the overview, the jobs list, and what one job did
//! (its attempts, audit rows, events and emails). Bounded queries only.

use uuid::Uuid;

use super::{Store, StoreError, fetch_all, fetch_optional};

/// How many jobs of a kind are in a state. `state` is the ledger's, refined: a queued job
/// waiting for a later time is `scheduled`, or `retrying` if an attempt already failed.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct KindStateCount {
    pub kind: String,
    pub state: String,
    pub jobs: i64,
}

pub async fn counts_by_kind_and_state(
    store: &Store,
    now_ms: i64,
) -> Result<Vec<KindStateCount>, StoreError> {
    let mut tx = store.begin_read().await?;
    let rows = fetch_all!(
        &mut tx,
        KindStateCount,
        "SELECT kind, shown_state AS state, COUNT(*) AS jobs FROM (
             SELECT kind,
                    CASE WHEN state = 'queued' AND run_at_ms > $1 AND attempts > 0 THEN 'retrying'
                         WHEN state = 'queued' AND run_at_ms > $1 THEN 'scheduled'
                         ELSE state END AS shown_state
               FROM jobs) AS refined
          GROUP BY kind, shown_state ORDER BY kind, shown_state",
        now_ms
    )?;
    tx.commit().await?;
    Ok(rows)
}

/// When the oldest job due now was recorded (ms), if any job waits.
pub async fn oldest_queued_at_ms(store: &Store, now_ms: i64) -> Result<Option<i64>, StoreError> {
    let mut tx = store.begin_read().await?;
    let oldest: Option<(Option<i64>,)> = fetch_optional!(
        &mut tx,
        (Option<i64>,),
        "SELECT MIN(created_at_ms) FROM jobs WHERE state = 'queued' AND run_at_ms <= $1",
        now_ms
    )?;
    tx.commit().await?;
    Ok(oldest.and_then(|(at,)| at))
}

/// What the jobs list may be narrowed to; `None` is any.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub kind: Option<String>,
    /// One of the ledger's states; "failed" is every job with a failed attempt not done.
    pub state: Option<String>,
    pub account_id: Option<i64>,
}

/// A row of the jobs list.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct JobListRow {
    pub id: Uuid,
    pub kind: String,
    pub account_id: Option<i64>,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
}

/// Jobs matching `filter`, newest first, at most `limit`.
pub async fn list_jobs(
    store: &Store,
    filter: &JobFilter,
    limit: i64,
) -> Result<Vec<JobListRow>, StoreError> {
    let (state, failed_only) = match filter.state.as_deref() {
        Some("failed") => (None, true),
        other => (other.map(str::to_string), false),
    };
    let mut tx = store.begin_read().await?;
    let rows = fetch_all!(
        &mut tx,
        JobListRow,
        "SELECT id, kind, account_id, state, attempts, max_attempts, last_error, created_at_ms
           FROM jobs
          WHERE ($1 IS NULL OR kind = $1)
            AND ($2 IS NULL OR state = $2)
            AND ($3 IS NULL OR account_id = $3)
            AND (NOT $4 OR (state <> 'done' AND last_error IS NOT NULL))
          ORDER BY created_at_ms DESC, id DESC
          LIMIT $5",
        filter.kind.clone(),
        state,
        filter.account_id,
        failed_only,
        limit
    )?;
    tx.commit().await?;
    Ok(rows)
}

/// One attempt that did not succeed.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i32,
    pub error: String,
    pub permanent: bool,
    pub at_ms: i64,
}

/// What a job did and what befell it: its failed attempts, the audit rows, events and
/// emails it recorded.
#[derive(Clone, Debug, Default)]
pub struct JobTrail {
    pub attempts: Vec<AttemptRow>,
    pub audit: Vec<super::audit::AuditRow>,
    pub events: Vec<EventOfJob>,
    pub emails: Vec<EmailOfJob>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EventOfJob {
    pub id: i64,
    pub kind: String,
    pub user_id: Option<i64>,
    pub changes: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EmailOfJob {
    pub id: i64,
    pub template: String,
    pub language: String,
    pub to_address: String,
    pub state: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

pub async fn job_trail(store: &Store, job_id: Uuid) -> Result<JobTrail, StoreError> {
    let mut tx = store.begin_read().await?;
    let attempts = fetch_all!(
        &mut tx,
        AttemptRow,
        "SELECT attempt, error, permanent, at_ms FROM job_attempt_errors
          WHERE job_id = $1 ORDER BY attempt",
        job_id
    )?;
    let audit = super::audit::for_job(&mut tx, job_id).await?;
    let events = fetch_all!(
        &mut tx,
        EventOfJob,
        "SELECT id, kind, user_id, changes, at FROM events WHERE job_id = $1 ORDER BY id",
        job_id
    )?;
    let emails = fetch_all!(
        &mut tx,
        EmailOfJob,
        "SELECT id, template, language, to_address, state, created_at FROM email_messages
          WHERE created_by_job = $1 ORDER BY id",
        job_id
    )?;
    tx.commit().await?;
    Ok(JobTrail {
        attempts,
        audit,
        events,
        emails,
    })
}
