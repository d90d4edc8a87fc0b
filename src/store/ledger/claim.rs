//! Taking jobs to run, and giving back claims that never started: the workers' fetch.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::{ClaimedJob, placeholders};
use crate::store::{Dialect, Store, StoreError, execute, fetch_all};

/// Claims up to `limit` due jobs for `worker`, oldest due first, counting the attempt.
/// This is the embedded queue's fetch; on PostgreSQL concurrent workers skip each other's
/// rows. SQLite is told to walk the partial index `jobs_due`: left to itself it picks the
/// (state, kind) index and sorts every queued row on each claim, which made a 100,000-job
/// backlog drain slowly until it had shrunk.
pub async fn claim_due(
    store: &Store,
    worker: &str,
    limit: i64,
    now_ms: i64,
    paused: &BTreeSet<String>,
) -> Result<Vec<ClaimedJob>, StoreError> {
    // Paused kinds stay queued. The set travels as one JSON array, so the statement is the
    // same whatever its size; with none paused (nearly always) the claim is the plain one.
    let dialect = store.dialect();
    let skip_paused = match dialect {
        _ if paused.is_empty() => "",
        Dialect::Postgres => "AND kind NOT IN (SELECT jsonb_array_elements_text($4::jsonb))",
        Dialect::Sqlite => "AND kind NOT IN (SELECT value FROM json_each($4))",
    };
    let sql = match dialect {
        Dialect::Postgres => format!(
            "UPDATE jobs SET state = 'running', locked_by = $1, locked_at_ms = $2,
                             attempts = attempts + 1
              WHERE id IN (SELECT id FROM jobs
                            WHERE state = 'queued' AND run_at_ms <= $2 {skip_paused}
                            ORDER BY run_at_ms, id LIMIT $3
                            FOR UPDATE SKIP LOCKED)
              RETURNING id, kind, payload, attempts, max_attempts, created_at_ms"
        ),
        Dialect::Sqlite => format!(
            "UPDATE jobs SET state = 'running', locked_by = $1, locked_at_ms = $2,
                             attempts = attempts + 1
              WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_due
                            WHERE state = 'queued' AND run_at_ms <= $2 {skip_paused}
                            ORDER BY run_at_ms, id LIMIT $3)
              RETURNING id, kind, payload, attempts, max_attempts, created_at_ms"
        ),
    };
    let sql = sqlx::AssertSqlSafe(sql);
    let mut tx = store.begin().await?;
    let claimed = if paused.is_empty() {
        fetch_all!(&mut tx, ClaimedJob, sql, worker, now_ms, limit)?
    } else {
        let paused = serde_json::Value::from(paused.iter().cloned().collect::<Vec<_>>());
        fetch_all!(
            &mut tx,
            ClaimedJob,
            sql,
            worker,
            now_ms,
            limit,
            paused.to_string()
        )?
    };
    tx.commit().await?;
    Ok(claimed)
}

/// Claims, for `worker`, the jobs of a batch the transport delivered: those still queued.
/// A job the transport delivered twice (pushed again by the reconciler), one finished
/// meanwhile, or one still held by a worker presumed dead (the rescue puts it back first,
/// recording why its attempt ended) is not returned: the caller drops its delivery, so a job
/// never runs twice at once. Rows this very claim took (same worker, same `now_ms`) are
/// returned again: a retry after a commit whose answer was lost gets them back rather than
/// dropping them.
///
/// An operator's retry pushes its jobs before it commits them queued (one write per row,
/// see `Queue::requeue_recorded`), so a delivery can arrive while its row is still dead in
/// this statement's snapshot. On PostgreSQL a dead or discarded row is therefore taken by
/// the UPDATE too, left as it is: taking it waits for the retry's transaction, and the row
/// is then judged as that transaction left it (queued: claimed; still dead after a
/// rollback: dropped). Filtering on `state = 'queued'` alone would skip the row unseen.
pub async fn claim_delivered(
    store: &Store,
    worker: &str,
    ids: &[Uuid],
    now_ms: i64,
) -> Result<Vec<ClaimedJob>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    const CLAIMABLE: &str =
        "(state = 'queued' OR (state = 'running' AND locked_by = $1 AND locked_at_ms = $2))";
    match store {
        // One statement, committed on its own: no BEGIN and COMMIT round trips, and one
        // prepared statement whatever the batch size.
        Store::Postgres(pool) => Ok(sqlx::query_as::<_, ClaimedJob>(sqlx::AssertSqlSafe(format!(
            "WITH taken AS (
                 UPDATE jobs
                    SET state = CASE WHEN {CLAIMABLE} THEN 'running' ELSE state END,
                        locked_by = CASE WHEN {CLAIMABLE} THEN $1 ELSE locked_by END,
                        locked_at_ms = CASE WHEN {CLAIMABLE} THEN $2 ELSE locked_at_ms END,
                        attempts = CASE WHEN state = 'queued' THEN attempts + 1
                                        ELSE attempts END
                  WHERE id = ANY($3) AND ({CLAIMABLE} OR state IN ('dead', 'discarded'))
              RETURNING id, kind, payload, attempts, max_attempts, created_at_ms, state)
             SELECT id, kind, payload, attempts, max_attempts, created_at_ms
               FROM taken WHERE state = 'running'"
        )))
        .bind(worker)
        .bind(now_ms)
        .bind(ids)
        .fetch_all(pool)
        .await?),
        // A writer waits for the retry's write lock, then reads what it committed.
        Store::Sqlite(pool) => {
            let sql = format!(
                "UPDATE jobs SET state = 'running', locked_by = $1, locked_at_ms = $2,
                                 attempts = CASE WHEN state = 'queued' THEN attempts + 1
                                                 ELSE attempts END
                  WHERE id IN ({}) AND {CLAIMABLE}
              RETURNING id, kind, payload, attempts, max_attempts, created_at_ms",
                placeholders(3, ids.len())
            );
            let mut query = sqlx::query_as::<_, ClaimedJob>(sqlx::AssertSqlSafe(sql))
                .bind(worker)
                .bind(now_ms);
            for id in ids {
                query = query.bind(*id);
            }
            Ok(query.fetch_all(pool).await?)
        }
    }
}

/// Gives back claims that never started (fetched ahead, then the worker stopped): the
/// attempt they counted did not happen, so it is uncounted. Only rows still claimed by a
/// consumer starting with `prefix` change. `pushed_at_ms` as in [`super::settle_many`].
pub async fn unclaim(
    store: &Store,
    ids: &[Uuid],
    prefix: &str,
    pushed_at_ms: Option<i64>,
) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let mut unclaimed = 0;
    for id in ids {
        unclaimed += execute!(
            &mut tx,
            "UPDATE jobs SET state = 'queued', locked_by = NULL, locked_at_ms = NULL,
                             attempts = attempts - 1, pushed_at_ms = $3
              WHERE id = $1 AND state = 'running' AND substr(locked_by, 1, length($2)) = $2",
            *id,
            prefix,
            pushed_at_ms
        )?;
    }
    tx.commit().await?;
    Ok(unclaimed)
}

/// Renews a claim a worker still holds on a job it is running (its handler outlived a
/// third of the visibility timeout), so the stale requeue, which reads `locked_at_ms`, does
/// not take it for abandoned. Returns the holder's consumer name, or `None` when the row is
/// no longer this claim's to renew (settled, or put back after all).
pub async fn renew_claim(
    store: &Store,
    id: Uuid,
    attempt: i32,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    let sql = "UPDATE jobs SET locked_at_ms = $3
                WHERE id = $1 AND state = 'running' AND attempts = $2 AND locked_by IS NOT NULL
                RETURNING locked_by";
    Ok(match store {
        Store::Postgres(pool) => {
            sqlx::query_scalar(sql)
                .bind(id)
                .bind(attempt)
                .bind(now_ms)
                .fetch_optional(pool)
                .await?
        }
        Store::Sqlite(pool) => {
            sqlx::query_scalar(sql)
                .bind(id)
                .bind(attempt)
                .bind(now_ms)
                .fetch_optional(pool)
                .await?
        }
    })
}
