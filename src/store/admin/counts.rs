//! Jobs counted by kind and state over the whole ledger (the overview, `lifecycle_jobs`),
//! the ledger's size as the database estimates it, and the wait of the job due longest.

use super::{Value, fetch_rows};
use crate::store::{Store, StoreError};

/// How many jobs of a kind are in an operator's state (as [`super::JobState`] names them).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct KindStateCount {
    pub kind: String,
    pub state: String,
    pub jobs: i64,
}

/// Jobs by kind and operator state at `now_ms`, in one pass over the ledger: a queued job
/// that already failed is `retrying`, one due later `scheduled`, as the jobs list says.
/// On a million jobs this reads every row (a quarter of a second on PostgreSQL): the
/// serving process reads it in the background, not per page (see `crate::job_counts`).
pub async fn counts_by_kind_and_state(
    store: &Store,
    now_ms: i64,
) -> Result<Vec<KindStateCount>, StoreError> {
    fetch_rows(
        store,
        "SELECT kind, CASE WHEN state = 'queued' AND attempts > 0 THEN 'retrying'
                           WHEN state = 'queued' AND run_at_ms > $1 THEN 'scheduled'
                           ELSE state END AS state,
                COUNT(*) AS jobs
           FROM jobs GROUP BY 1, 2 ORDER BY 1, 2"
            .to_string(),
        &[Value::Int(now_ms)],
    )
    .await
}

/// About how many rows the ledger holds, read without counting them: PostgreSQL's estimate
/// from its last VACUUM or ANALYZE (0 before the first), SQLite's highest rowid (pruned
/// rows still counted, so never under the real figure). Cheap enough to ask on every page.
pub async fn ledger_rows_estimate(store: &Store) -> Result<i64, StoreError> {
    let sql = match store {
        Store::Postgres(_) => {
            "SELECT GREATEST(reltuples, 0)::BIGINT FROM pg_class WHERE oid = 'jobs'::regclass"
        }
        Store::Sqlite(_) => "SELECT COALESCE(MAX(rowid), 0) FROM jobs",
    };
    let rows: Vec<(i64,)> = fetch_rows(store, sql.to_string(), &[]).await?;
    Ok(rows.first().map_or(0, |(rows,)| *rows))
}

/// Since when the job waiting longest has been due (epoch ms); `None` when none waits.
/// Walks the partial index of due jobs, so it reads one row.
pub async fn oldest_due_since_ms(store: &Store, now_ms: i64) -> Result<Option<i64>, StoreError> {
    let rows: Vec<(i64,)> = fetch_rows(
        store,
        "SELECT run_at_ms FROM jobs WHERE state = 'queued' AND run_at_ms <= $1
          ORDER BY run_at_ms, id LIMIT 1"
            .to_string(),
        &[Value::Int(now_ms)],
    )
    .await?;
    Ok(rows.first().map(|(created,)| *created))
}
