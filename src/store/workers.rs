//! Worker processes and their heartbeats (`worker_processes`): who is alive, since when, and
//! how many jobs each holds. Times are wall-clock epoch milliseconds: liveness is about real
//! time, not the business clock tests set.

use super::{Store, StoreError, Tx, execute, fetch_all, fetch_scalar};

/// A process as it registers itself.
#[derive(Clone, Debug)]
pub struct NewProcess<'a> {
    pub id: &'a str,
    pub host: &'a str,
    pub pid: i64,
    pub workers: i32,
    pub concurrency: i32,
    pub now_ms: i64,
}

/// A process row, for the CLI, the dashboard and tests.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ProcessRow {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub workers: i32,
    pub concurrency: i32,
    pub started_at_ms: i64,
    pub last_beat_ms: i64,
    pub jobs_held: i32,
    pub stopped_at_ms: Option<i64>,
    pub stop_reason: Option<String>,
}

/// The columns of a [`ProcessRow`].
const PROCESS_COLUMNS: &str = "id, host, pid, workers, concurrency, started_at_ms, last_beat_ms,
     jobs_held, stopped_at_ms, stop_reason";

/// Why a process row was closed.
pub mod stop_reason {
    pub const SHUT_DOWN: &str = "shut down";
    pub const HEARTBEAT_LOST: &str = "heartbeat lost";
}

pub async fn register(store: &Store, process: &NewProcess<'_>) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    execute!(
        &mut tx,
        "INSERT INTO worker_processes (id, host, pid, workers, concurrency, started_at_ms,
                                       last_beat_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
        process.id,
        process.host,
        process.pid,
        process.workers,
        process.concurrency,
        process.now_ms
    )?;
    tx.commit().await
}

/// Records a beat of process `id`, with how many jobs its consumers (named
/// `<id>/<worker>-<fetcher>`) hold. Returns `false` when the row is closed: another process
/// took this one for dead (a pause longer than the timeout) and put its claims back.
pub async fn beat(store: &Store, id: &str, now_ms: i64) -> Result<bool, StoreError> {
    let prefix = consumer_prefix(id);
    let mut tx = store.begin().await?;
    let changed = execute!(
        &mut tx,
        "UPDATE worker_processes
            SET last_beat_ms = $2,
                jobs_held = (SELECT COUNT(*) FROM jobs
                              WHERE state = 'running'
                                AND substr(locked_by, 1, length($3)) = $3)
          WHERE id = $1 AND stopped_at_ms IS NULL",
        id,
        now_ms,
        prefix.as_str()
    )?;
    tx.commit().await?;
    Ok(changed == 1)
}

/// Processes still open whose last beat is older than `beat_before_ms`, other than `except`.
pub async fn silent_since(
    store: &Store,
    beat_before_ms: i64,
    except: &str,
) -> Result<Vec<ProcessRow>, StoreError> {
    let mut tx = store.begin_read().await?;
    let rows = fetch_all!(
        &mut tx,
        ProcessRow,
        sqlx::AssertSqlSafe(format!(
            "SELECT {PROCESS_COLUMNS} FROM worker_processes
              WHERE stopped_at_ms IS NULL AND last_beat_ms < $1 AND id <> $2
              ORDER BY last_beat_ms"
        )),
        beat_before_ms,
        except
    )?;
    tx.commit().await?;
    Ok(rows)
}

/// Closes process `id` in `tx`, if still open (and, with `beat_before_ms`, still silent):
/// `true` for the one caller that closed it, so only one process rescues a dead one.
pub async fn close(
    tx: &mut Tx,
    id: &str,
    now_ms: i64,
    reason: &str,
    beat_before_ms: Option<i64>,
) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE worker_processes SET stopped_at_ms = $2, stop_reason = $3
          WHERE id = $1 AND stopped_at_ms IS NULL
            AND ($4 IS NULL OR last_beat_ms < $4)",
        id,
        now_ms,
        reason,
        beat_before_ms
    )?;
    Ok(changed == 1)
}

/// Processes that beat since `beat_since_ms`, newest first: the live workers.
pub async fn live(store: &Store, beat_since_ms: i64) -> Result<Vec<ProcessRow>, StoreError> {
    let mut tx = store.begin_read().await?;
    let rows = fetch_all!(
        &mut tx,
        ProcessRow,
        sqlx::AssertSqlSafe(format!(
            "SELECT {PROCESS_COLUMNS} FROM worker_processes
              WHERE stopped_at_ms IS NULL AND last_beat_ms >= $1
              ORDER BY started_at_ms DESC"
        )),
        beat_since_ms
    )?;
    tx.commit().await?;
    Ok(rows)
}

/// Deletes rows of processes that stopped before `before_ms`: history enough for a day.
pub async fn prune_stopped(store: &Store, before_ms: i64) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let deleted = execute!(
        &mut tx,
        "DELETE FROM worker_processes WHERE stopped_at_ms < $1",
        before_ms
    )?;
    tx.commit().await?;
    Ok(deleted)
}

/// How many process rows exist, open or closed (tests).
pub async fn count(store: &Store) -> Result<i64, StoreError> {
    let mut tx = store.begin_read().await?;
    let count = fetch_scalar!(&mut tx, "SELECT COUNT(*) FROM worker_processes")?;
    tx.commit().await?;
    Ok(count)
}

/// The prefix of every consumer name of process `id`: its claims in the ledger and its
/// consumers in the Redis group carry it.
pub fn consumer_prefix(id: &str) -> String {
    format!("{id}/")
}
