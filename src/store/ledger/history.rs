//! Reading the ledger (`jobs show`, the API, tests) and pruning what finished long ago.

use std::time::Duration;

use uuid::Uuid;

use super::{JobRecord, placeholders};
use crate::store::{Store, StoreError, Tx, fetch_all, fetch_optional, fetch_scalar};

pub async fn get(store: &Store, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
    let mut tx = store.begin_read().await?;
    let record = fetch_optional!(
        &mut tx,
        JobRecord,
        "SELECT id, kind, account_id, payload, caller_key AS idempotency_key,
                idempotency_key AS internal_key, state, attempts, max_attempts,
                run_at_ms, last_error, created_at_ms, finished_at_ms
           FROM jobs WHERE id = $1",
        id
    )?;
    tx.commit().await?;
    Ok(record)
}

/// How many jobs are in each state.
pub async fn count_in_state(store: &Store, state: &str) -> Result<i64, StoreError> {
    let mut tx = store.begin_read().await?;
    let count = fetch_scalar!(&mut tx, "SELECT COUNT(*) FROM jobs WHERE state = $1", state)?;
    tx.commit().await?;
    Ok(count)
}

/// Deletes up to `limit` finished jobs: done or discarded ones that finished before
/// `before_ms`, dead ones (kept for an operator to retry or discard) that died before
/// `dead_before_ms`; with their attempt errors and applied marks, in one transaction.
/// Returns how many. A pruned job cannot be redelivered into effects: a delivery runs only
/// if it claims its ledger row.
pub async fn prune_finished(
    store: &Store,
    before_ms: i64,
    dead_before_ms: i64,
    limit: i64,
) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let ids: Vec<(Uuid,)> = fetch_all!(
        &mut tx,
        (Uuid,),
        "SELECT id FROM jobs
          WHERE state IN ('done', 'dead', 'discarded')
            AND finished_at_ms < $3
            AND ((state <> 'dead' AND finished_at_ms < $1)
                 OR (state = 'dead' AND finished_at_ms < $2))
          ORDER BY finished_at_ms LIMIT $4",
        before_ms,
        dead_before_ms,
        before_ms.max(dead_before_ms),
        limit
    )?;
    if ids.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let ids: Vec<Uuid> = ids.into_iter().map(|(id,)| id).collect();
    for table in ["job_attempt_errors", "applied_jobs"] {
        delete_by_ids(&mut tx, table, "job_id", &ids).await?;
    }
    delete_by_ids(&mut tx, "jobs", "id", &ids).await?;
    tx.commit().await?;
    Ok(ids.len() as u64)
}

/// `DELETE FROM <table> WHERE <column> IN (<ids>)`; table and column are ours, never input.
async fn delete_by_ids(
    tx: &mut Tx,
    table: &'static str,
    column: &'static str,
    ids: &[Uuid],
) -> Result<(), StoreError> {
    let sql = format!(
        "DELETE FROM {table} WHERE {column} IN ({})",
        placeholders(1, ids.len())
    );
    match tx {
        Tx::Postgres(tx) => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in ids {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await?;
        }
        Tx::Sqlite(tx) => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in ids {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// How many rows the ledger holds, all states: for the pruning test and operators.
pub async fn count_all(store: &Store) -> Result<i64, StoreError> {
    let mut tx = store.begin_read().await?;
    let count = fetch_scalar!(&mut tx, "SELECT COUNT(*) FROM jobs")?;
    tx.commit().await?;
    Ok(count)
}

/// Finished jobs deleted per transaction.
const PRUNE_CHUNK: i64 = 2000;

/// The instants before which finished jobs are past their retention, seen from a moment:
/// done and discarded ones after `queue.retention_days`, dead ones (kept for an operator to
/// retry or discard) after `queue.dead_retention_days`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneCutoffs {
    pub finished_before_ms: i64,
    pub dead_before_ms: i64,
}

impl PruneCutoffs {
    pub fn at(at_ms: i64, retention_days: u32, dead_retention_days: u32) -> Self {
        const DAY_MS: i64 = 24 * 3600 * 1000;
        Self {
            finished_before_ms: at_ms - i64::from(retention_days) * DAY_MS,
            dead_before_ms: at_ms - i64::from(dead_retention_days) * DAY_MS,
        }
    }
}

/// How many finished jobs are past their retention: what a prune would delete.
pub async fn count_prunable(store: &Store, cutoffs: PruneCutoffs) -> Result<i64, StoreError> {
    let mut tx = store.begin_read().await?;
    let count = fetch_scalar!(
        &mut tx,
        "SELECT COUNT(*) FROM jobs
          WHERE state IN ('done', 'dead', 'discarded')
            AND ((state <> 'dead' AND finished_at_ms < $1)
                 OR (state = 'dead' AND finished_at_ms < $2))",
        cutoffs.finished_before_ms,
        cutoffs.dead_before_ms
    )?;
    tx.commit().await?;
    Ok(count)
}

/// Deletes the jobs past their retention, a batch per transaction (so a crash loses at most
/// the batch under way, and a rerun goes on from there), until none is left or `budget` has
/// passed, logging the progress. Returns how many.
pub async fn prune(
    store: &Store,
    cutoffs: PruneCutoffs,
    budget: Duration,
) -> Result<u64, StoreError> {
    let started = std::time::Instant::now();
    let mut pruned = 0;
    loop {
        let batch = prune_finished(
            store,
            cutoffs.finished_before_ms,
            cutoffs.dead_before_ms,
            PRUNE_CHUNK,
        )
        .await?;
        pruned += batch;
        if batch > 0 {
            let rate = pruned as f64 / started.elapsed().as_secs_f64().max(1e-3);
            tracing::info!(
                jobs = pruned,
                per_sec = rate as u64,
                "pruning finished jobs"
            );
        }
        if batch < PRUNE_CHUNK as u64 || started.elapsed() >= budget {
            return Ok(pruned);
        }
    }
}
