//! Events: one per completed change, recorded in the transaction of the job that made it,
//! published once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Dialect, StoreError, Tx, execute, fetch_all};

#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub account_id: Option<i64>,
    pub user_id: Option<i64>,
    pub job_id: Uuid,
    pub at: DateTime<Utc>,
    /// JSON array of what changed.
    pub changes: &'a str,
    /// Set when nothing publishes events beyond this table (the embedded default).
    pub published_at: Option<DateTime<Utc>>,
}

pub async fn record(tx: &mut Tx, event: &NewEvent<'_>) -> Result<(), StoreError> {
    execute!(
        tx,
        "INSERT INTO events (kind, account_id, user_id, job_id, at, changes, published_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        event.kind,
        event.account_id,
        event.user_id,
        event.job_id,
        event.at,
        event.changes,
        event.published_at
    )?;
    Ok(())
}

/// An event as subscribers read it (the JSON of a stream entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EventRow {
    #[serde(rename = "event_id")]
    pub id: i64,
    pub kind: String,
    pub account_id: Option<i64>,
    pub user_id: Option<i64>,
    pub job_id: Uuid,
    pub at: DateTime<Utc>,
    /// JSON array: `[{"entity": "user", "entity_id": 4, "action": "deactivated"}, …]`.
    #[serde(serialize_with = "raw_json")]
    pub changes: String,
}

fn raw_json<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    value.serialize(serializer)
}

const COLUMNS: &str = "id, kind, account_id, user_id, job_id, at, changes";

/// Events not published yet, in order, locked in `tx` on PostgreSQL.
pub async fn unpublished(tx: &mut Tx, limit: i64) -> Result<Vec<EventRow>, StoreError> {
    let sql = match tx.dialect() {
        Dialect::Postgres => format!(
            "SELECT {COLUMNS} FROM events WHERE published_at IS NULL ORDER BY id LIMIT $1
             FOR UPDATE SKIP LOCKED"
        ),
        Dialect::Sqlite => {
            format!("SELECT {COLUMNS} FROM events WHERE published_at IS NULL ORDER BY id LIMIT $1")
        }
    };
    fetch_all!(tx, EventRow, sqlx::AssertSqlSafe(sql), limit)
}

pub async fn mark_published(tx: &mut Tx, ids: &[i64], at: DateTime<Utc>) -> Result<(), StoreError> {
    for id in ids {
        execute!(
            tx,
            "UPDATE events SET published_at = $2 WHERE id = $1",
            *id,
            at
        )?;
    }
    Ok(())
}

/// An account's events, oldest first: the feed on the embedded default.
pub async fn for_account(tx: &mut Tx, account_id: i64) -> Result<Vec<EventRow>, StoreError> {
    fetch_all!(
        tx,
        EventRow,
        sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM events WHERE account_id = $1 ORDER BY id"
        )),
        account_id
    )
}
