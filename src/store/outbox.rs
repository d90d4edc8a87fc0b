//! The transactional outbox of producer services: rows they insert in their own
//! transactions, relayed here into jobs exactly once.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Dialect, StoreError, Tx, execute, fetch_all};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub idempotency_key: Option<String>,
}

/// Rows not relayed yet, oldest first, locked in `tx` on PostgreSQL so that the relays of
/// several processes take different ones.
pub async fn pending(tx: &mut Tx, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    match tx.dialect() {
        Dialect::Postgres => fetch_all!(
            tx,
            OutboxRow,
            "SELECT id, kind, payload, idempotency_key FROM job_outbox
              WHERE relayed_at IS NULL ORDER BY id LIMIT $1
              FOR UPDATE SKIP LOCKED",
            limit
        ),
        Dialect::Sqlite => fetch_all!(
            tx,
            OutboxRow,
            "SELECT id, kind, payload, idempotency_key FROM job_outbox
              WHERE relayed_at IS NULL ORDER BY id LIMIT $1",
            limit
        ),
    }
}

/// Marks a row relayed: into job `job_id`, or refused for `error`.
pub async fn mark_relayed(
    tx: &mut Tx,
    id: i64,
    job_id: Option<Uuid>,
    error: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "UPDATE job_outbox SET relayed_at = $2, job_id = $3, error = $4 WHERE id = $1",
        id,
        at,
        job_id,
        error
    )?;
    Ok(())
}

/// Inserts a row as a producer would (tests, the demo): `kind` is a slug or a name.
pub async fn insert(
    tx: &mut Tx,
    kind: &str,
    payload: &str,
    idempotency_key: Option<&str>,
) -> Result<i64, StoreError> {
    super::fetch_scalar!(
        tx,
        "INSERT INTO job_outbox (kind, payload, idempotency_key) VALUES ($1, $2, $3) RETURNING id",
        kind,
        payload,
        idempotency_key
    )
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RelayedRow {
    pub id: i64,
    pub job_id: Option<Uuid>,
    pub error: Option<String>,
    pub relayed: bool,
}

pub async fn find(tx: &mut Tx, id: i64) -> Result<Option<RelayedRow>, StoreError> {
    super::fetch_optional!(
        tx,
        RelayedRow,
        "SELECT id, job_id, error, relayed_at IS NOT NULL AS relayed FROM job_outbox WHERE id = $1",
        id
    )
}
