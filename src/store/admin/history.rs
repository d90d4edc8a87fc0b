//! One job's whole story (its attempts, the audit rows, events and emails it produced), and
//! one user's ("what happened to user 42?"), newest first.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{JobFilter, JobPage, Value, fetch_rows, list_jobs};
use crate::store::ledger::{self, JobRecord};
use crate::store::{Store, StoreError};

/// How one attempt of a job ended, when it failed.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct AttemptRow {
    pub job_id: Uuid,
    pub attempt: i32,
    pub error: String,
    /// Bad input or a guard's refusal: not retried.
    pub permanent: bool,
    pub at_ms: i64,
}

/// A row of the audit log, with its time and tenant.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub account_id: i64,
    pub actor: String,
    pub job_id: Option<Uuid>,
    pub entity: String,
    pub entity_id: i64,
    pub action: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// The event a job emitted, if it completed a change.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct EventOfJob {
    pub id: i64,
    pub kind: String,
    pub user_id: Option<i64>,
    pub at: DateTime<Utc>,
    pub changes: String,
}

/// An email a job recorded (the message itself, not its secrets: templates hold none).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct EmailOfJob {
    pub id: i64,
    pub template: String,
    pub language: String,
    pub to_address: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
}

/// A job page's content.
#[derive(Clone, Debug)]
pub struct JobDetail {
    pub job: JobRecord,
    /// Newest first.
    pub attempts: Vec<AttemptRow>,
    pub audit: Vec<AuditEntry>,
    pub events: Vec<EventOfJob>,
    pub emails: Vec<EmailOfJob>,
}

const AUDIT_COLUMNS: &str = "id, account_id, actor, job_id, entity, entity_id, action, detail, at";

/// The failed attempts of a job, newest first.
pub async fn attempts(store: &Store, job_id: Uuid) -> Result<Vec<AttemptRow>, StoreError> {
    fetch_rows(
        store,
        "SELECT job_id, attempt, error, permanent, at_ms FROM job_attempt_errors
          WHERE job_id = $1 ORDER BY attempt DESC"
            .to_string(),
        &[Value::Id(job_id)],
    )
    .await
}

/// A job with everything it left behind; `None` when there is no such job.
pub async fn job_detail(store: &Store, job_id: Uuid) -> Result<Option<JobDetail>, StoreError> {
    let Some(job) = ledger::get(store, job_id).await? else {
        return Ok(None);
    };
    let id = [Value::Id(job_id)];
    Ok(Some(JobDetail {
        job,
        attempts: attempts(store, job_id).await?,
        audit: fetch_rows(
            store,
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE job_id = $1 ORDER BY id DESC"),
            &id,
        )
        .await?,
        events: fetch_rows(
            store,
            "SELECT id, kind, user_id, at, changes FROM events WHERE job_id = $1".to_string(),
            &id,
        )
        .await?,
        emails: fetch_rows(
            store,
            "SELECT id, template, language, to_address, state, created_at FROM email_messages
              WHERE created_by_job = $1 ORDER BY id DESC"
                .to_string(),
            &id,
        )
        .await?,
    }))
}

/// What happened to a user: their jobs, those jobs' failed attempts, and the audit rows
/// about them or made by their jobs; each newest first.
#[derive(Clone, Debug)]
pub struct UserHistory {
    pub jobs: Vec<JobRecord>,
    pub attempts: Vec<AttemptRow>,
    pub audit: Vec<AuditEntry>,
}

/// The history of `user_id` (within `account_id` when given), at most `limit` of each.
pub async fn user_history(
    store: &Store,
    user_id: i64,
    account_id: Option<i64>,
    limit: i64,
    now_ms: i64,
) -> Result<UserHistory, StoreError> {
    let filter = JobFilter {
        user_id: Some(user_id),
        account_id,
        ..JobFilter::default()
    };
    let JobPage { jobs, .. } = list_jobs(store, &filter, None, limit, now_ms).await?;
    let attempts = if jobs.is_empty() {
        Vec::new()
    } else {
        let ids: Vec<Value> = jobs.iter().map(|job| Value::Id(job.id)).collect();
        let list = (1..=ids.len()).map(|n| format!("${n}")).collect::<Vec<_>>();
        fetch_rows(
            store,
            format!(
                "SELECT job_id, attempt, error, permanent, at_ms FROM job_attempt_errors
                  WHERE job_id IN ({}) ORDER BY at_ms DESC, attempt DESC",
                list.join(", ")
            ),
            &ids,
        )
        .await?
    };
    let mut values = vec![Value::Int(user_id), Value::Int(limit.max(1))];
    let tenant = match account_id {
        Some(account) => {
            values.push(Value::Int(account));
            "AND account_id = $3"
        }
        None => "",
    };
    let audit = fetch_rows(
        store,
        format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log
              WHERE ((entity = 'user' AND entity_id = $1)
                     OR job_id IN (SELECT job_id FROM events WHERE user_id = $1)) {tenant}
              ORDER BY at DESC, id DESC LIMIT $2"
        ),
        &values,
    )
    .await?;
    Ok(UserHistory {
        jobs,
        attempts,
        audit,
    })
}
