//! The operator's side of the ledger: lists of jobs under a filter with keyset pages
//! (`jobs`), one job's or one user's whole story (`history`), and what operators did and
//! paused (`actions`). The CLI and the `/admin` dashboard call these, never raw SQL.
//!
//! Filters are assembled from fixed SQL fragments, one per filter present, each with its own
//! placeholder: the planner sees plain predicates (and picks the partial indexes), and no
//! input is ever formatted into a statement.

mod actions;
mod counts;
mod history;
mod jobs;

pub use actions::{
    NewOperatorAction, OperatorAction, discard, is_paused, list_actions, pause_kind, paused_kinds,
    record_action, resume_kind,
};
pub use counts::{
    KindStateCount, counts_by_kind_and_state, ledger_rows_estimate, oldest_due_since_ms,
};
pub use history::{
    AttemptRow, AuditEntry, EmailOfJob, EventOfJob, JobDetail, UserHistory, attempts, job_detail,
    user_history,
};
pub use jobs::{JobCursor, JobFilter, JobPage, JobState, count_matching, list_jobs, matching_ids};

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::{Store, StoreError};

/// A value bound to a placeholder of an assembled statement.
#[derive(Clone, Debug)]
enum Value {
    Int(i64),
    Text(String),
    Id(Uuid),
}

/// Runs an assembled read on the pool, binding `values` in order.
async fn fetch_rows<R>(store: &Store, sql: String, values: &[Value]) -> Result<Vec<R>, StoreError>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + for<'r> sqlx::FromRow<'r, SqliteRow> + Send + Unpin,
{
    match store {
        Store::Postgres(pool) => {
            let mut query = sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql));
            for value in values {
                query = match value {
                    Value::Int(v) => query.bind(*v),
                    Value::Text(v) => query.bind(v.clone()),
                    Value::Id(v) => query.bind(*v),
                };
            }
            Ok(query.fetch_all(pool).await?)
        }
        Store::Sqlite(pool) => {
            let mut query = sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql));
            for value in values {
                query = match value {
                    Value::Int(v) => query.bind(*v),
                    Value::Text(v) => query.bind(v.clone()),
                    Value::Id(v) => query.bind(*v),
                };
            }
            Ok(query.fetch_all(pool).await?)
        }
    }
}
