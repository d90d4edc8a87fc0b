//! Jobs handed to the transport before the transaction recording them commits (PostgreSQL).
//!
//! Such a job's row is written once, already marked pushed, instead of inserted and then
//! marked when Redis holds it: the mark was a second write of every row, which the partial
//! index on unpushed rows keeps from being HOT. The order needs the claim to wait: a delivery
//! read before the commit finds no row in its snapshot (an uncommitted insert is invisible,
//! and nothing waits on it). So the recording transaction holds an advisory lock, named in
//! the message, from before the push until it ends; a delivery that claims nothing waits on
//! that lock, then claims again and sees the row as the transaction left it (committed: it
//! runs; rolled back: there is none, and the delivery is dropped).

use crate::store::{Store, StoreError, Tx, fetch_scalar};

/// The first key of the recording locks (`pg_advisory_xact_lock(int, int)`): "lr". The
/// second is the backend's pid, unique among open transactions, since a connection has one
/// at a time: two recordings never share a lock.
const RECORDING_LOCK_CLASS: i32 = 0x6c72;

/// Takes, until `tx` ends, the lock that deliveries of the jobs it records wait on, and
/// returns its name for their messages. `None` on SQLite, whose claims wait for the one
/// write lock anyway.
pub async fn hold_recording(tx: &mut Tx) -> Result<Option<i32>, StoreError> {
    match tx {
        Tx::Sqlite(_) => Ok(None),
        Tx::Postgres(_) => {
            let pid: i32 = fetch_scalar!(
                tx,
                "SELECT pg_backend_pid() FROM (SELECT pg_advisory_xact_lock($1, pg_backend_pid())) AS held",
                RECORDING_LOCK_CLASS
            )?;
            Ok(Some(pid))
        }
    }
}

/// Waits until every transaction holding one of the recording locks `names` has ended
/// (committed or rolled back); returns at once for names no transaction holds.
pub async fn await_recordings(store: &Store, names: &[i32]) -> Result<(), StoreError> {
    let Store::Postgres(pool) = store else {
        return Ok(());
    };
    if names.is_empty() {
        return Ok(());
    }
    // One statement, its own transaction: each shared lock is released as it ends.
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock_shared($1, name)) FROM unnest($2::int4[]) AS name",
    )
    .bind(RECORDING_LOCK_CLASS)
    .bind(names)
    .execute(pool)
    .await?;
    Ok(())
}
