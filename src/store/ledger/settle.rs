//! How attempts ended: a batch of acknowledgements recorded at once.

use uuid::Uuid;

use crate::store::{Dialect, Store, StoreError, Tx, execute};

/// How one attempt ended, as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Its effects are applied (or it was a no-op).
    Done,
    /// The attempt failed; with `retry_at_ms` the job is queued again for then, without
    /// it is dead. The error joins the job's history either way.
    Failed {
        error: String,
        permanent: bool,
        retry_at_ms: Option<i64>,
    },
}

/// Records how many attempts ended, in one transaction: one commit for a whole batch of
/// acknowledgements is what lets the queue go faster than the database commits.
///
/// `retry_pushed_at_ms`: what to record of a retried job's transport: `Some` when the
/// ledger row itself is the queue entry, `None` when it still has to be pushed (Redis).
pub async fn settle_many(
    store: &Store,
    settlements: &[(Uuid, i32, Settlement)],
    now_ms: i64,
    retry_pushed_at_ms: Option<i64>,
) -> Result<(), StoreError> {
    let (done, failed): (Vec<_>, Vec<_>) = settlements
        .iter()
        .partition(|(_, _, settlement)| *settlement == Settlement::Done);
    if let Store::Postgres(pool) = store {
        // Every job done, the common case: one statement for the whole batch, committed on
        // its own. At thousands of jobs a second a statement per job, or the round trips of
        // BEGIN and COMMIT, would cost more than the update.
        if !done.is_empty() {
            let ids: Vec<Uuid> = done.iter().map(|(id, _, _)| *id).collect();
            let attempts: Vec<i32> = done.iter().map(|(_, attempt, _)| *attempt).collect();
            sqlx::query(
                "UPDATE jobs SET state = 'done', finished_at_ms = $1, locked_by = NULL,
                                 attempts = settled.attempt
                   FROM UNNEST($2::uuid[], $3::int4[]) AS settled (id, attempt)
                  WHERE jobs.id = settled.id",
            )
            .bind(now_ms)
            .bind(ids)
            .bind(attempts)
            .execute(pool)
            .await?;
        }
        if failed.is_empty() {
            return Ok(());
        }
    }
    // On SQLite (in process, no round trips) every outcome is a statement of its own.
    let done_here = match store.dialect() {
        Dialect::Sqlite => done.as_slice(),
        Dialect::Postgres => &[],
    };
    let mut tx = store.begin().await?;
    for (id, attempt, settlement) in done_here.iter().chain(&failed) {
        settle(
            &mut tx,
            *id,
            *attempt,
            settlement,
            now_ms,
            retry_pushed_at_ms,
        )
        .await?;
    }
    tx.commit().await
}

async fn settle(
    tx: &mut Tx,
    id: Uuid,
    attempt: i32,
    settlement: &Settlement,
    now_ms: i64,
    retry_pushed_at_ms: Option<i64>,
) -> Result<(), StoreError> {
    match settlement {
        Settlement::Done => {
            execute!(
                tx,
                "UPDATE jobs SET state = 'done', finished_at_ms = $2, locked_by = NULL,
                                 attempts = $3
                  WHERE id = $1",
                id,
                now_ms,
                attempt
            )?;
        }
        Settlement::Failed {
            error,
            permanent,
            retry_at_ms,
        } => {
            execute!(
                tx,
                "INSERT INTO job_attempt_errors (job_id, attempt, error, permanent, at_ms)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (job_id, attempt) DO UPDATE SET error = excluded.error,
                     permanent = excluded.permanent, at_ms = excluded.at_ms",
                id,
                attempt,
                error.as_str(),
                *permanent,
                now_ms
            )?;
            match retry_at_ms {
                Some(run_at_ms) => execute!(
                    tx,
                    "UPDATE jobs SET state = 'queued', run_at_ms = $2, locked_by = NULL,
                                     locked_at_ms = NULL, last_error = $3, attempts = $4,
                                     pushed_at_ms = $5
                      WHERE id = $1",
                    id,
                    *run_at_ms,
                    error.as_str(),
                    attempt,
                    retry_pushed_at_ms
                )?,
                None => execute!(
                    tx,
                    "UPDATE jobs SET state = 'dead', finished_at_ms = $2, locked_by = NULL,
                                     last_error = $3, attempts = $4
                      WHERE id = $1",
                    id,
                    now_ms,
                    error.as_str(),
                    attempt
                )?,
            };
        }
    }
    Ok(())
}
