//! What the transport is known to hold: the pushed marks, the queued jobs it may have lost,
//! and the epoch that tells a Redis restarted empty from the one the marks were made for.

use uuid::Uuid;

use super::{ClaimedJob, placeholders};
use crate::store::{Dialect, Store, StoreError, Tx, execute, fetch_all, fetch_optional};

/// Records that the transport holds these jobs.
pub async fn mark_pushed(store: &Store, ids: &[Uuid], now_ms: i64) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    if let Store::Postgres(pool) = store {
        sqlx::query("UPDATE jobs SET pushed_at_ms = $1 WHERE id = ANY($2)")
            .bind(now_ms)
            .bind(ids)
            .execute(pool)
            .await?;
        return Ok(());
    }
    let mut tx = store.begin().await?;
    mark_pushed_in(&mut tx, ids, Some(now_ms)).await?;
    tx.commit().await
}

/// [`mark_pushed`] inside the caller's transaction; `None` forgets the mark (a push that
/// failed), so the reconciler pushes them.
pub async fn mark_pushed_in(
    tx: &mut Tx,
    ids: &[Uuid],
    pushed_at_ms: Option<i64>,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE jobs SET pushed_at_ms = $1 WHERE id IN ({})",
        placeholders(2, ids.len())
    );
    match tx {
        Tx::Postgres(tx) => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(pushed_at_ms);
            for id in ids {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await?;
        }
        Tx::Sqlite(tx) => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(pushed_at_ms);
            for id in ids {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// A queued job the transport may not hold, as the reconciler pushes it again.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UnpushedJob {
    /// The job; its `attempts` are the attempts already made.
    #[sqlx(flatten)]
    pub job: ClaimedJob,
    pub run_at_ms: i64,
}

/// Up to `limit` queued jobs recorded before `created_before_ms` that the transport is not
/// known to hold, locked in `tx` on PostgreSQL so that reconcilers of several processes
/// take different ones.
pub async fn unpushed(
    tx: &mut Tx,
    created_before_ms: i64,
    limit: i64,
) -> Result<Vec<UnpushedJob>, StoreError> {
    match tx.dialect() {
        Dialect::Postgres => fetch_all!(
            tx,
            UnpushedJob,
            "SELECT id, kind, payload, attempts, max_attempts, created_at_ms, run_at_ms FROM jobs
              WHERE state = 'queued' AND pushed_at_ms IS NULL AND created_at_ms < $1
              ORDER BY created_at_ms LIMIT $2
              FOR UPDATE SKIP LOCKED",
            created_before_ms,
            limit
        ),
        Dialect::Sqlite => fetch_all!(
            tx,
            UnpushedJob,
            "SELECT id, kind, payload, attempts, max_attempts, created_at_ms, run_at_ms FROM jobs
              WHERE state = 'queued' AND pushed_at_ms IS NULL AND created_at_ms < $1
              ORDER BY created_at_ms LIMIT $2",
            created_before_ms,
            limit
        ),
    }
}

/// The transport lost what it held (Redis restarted empty, or was flushed): no queued job
/// is known to be pushed any more. Returns how many the reconciler will push again.
pub async fn forget_pushed(store: &Store) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let forgotten = execute!(
        &mut tx,
        "UPDATE jobs SET pushed_at_ms = NULL WHERE state = 'queued' AND pushed_at_ms IS NOT NULL"
    )?;
    tx.commit().await?;
    Ok(forgotten)
}

/// The epoch of a Redis queue namespace as last recorded.
pub async fn queue_epoch(store: &Store, namespace: &str) -> Result<Option<String>, StoreError> {
    let mut tx = store.begin_read().await?;
    let epoch: Option<(String,)> = fetch_optional!(
        &mut tx,
        (String,),
        "SELECT epoch FROM queue_epochs WHERE namespace = $1",
        namespace
    )?;
    tx.commit().await?;
    Ok(epoch.map(|(epoch,)| epoch))
}

pub async fn record_queue_epoch(
    store: &Store,
    namespace: &str,
    epoch: &str,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    execute!(
        &mut tx,
        "INSERT INTO queue_epochs (namespace, epoch) VALUES ($1, $2)
         ON CONFLICT (namespace) DO UPDATE SET epoch = excluded.epoch",
        namespace,
        epoch
    )?;
    tx.commit().await
}
