//! Recording jobs: the producers' side (the API, the enqueue client, the outbox relay,
//! handlers recording follow-up jobs), with the idempotency keys that make a retry harmless.

use uuid::Uuid;

use super::{IdempotencyKey, NewJob, Recorded};
use crate::store::{Store, StoreError, Tx, execute, fetch_optional};

/// The job holding a key, with what tells a retry from a different job.
#[derive(Debug, sqlx::FromRow)]
struct Holder {
    id: Uuid,
    kind: String,
    payload: String,
}

impl Holder {
    fn answer(self, job: &NewJob) -> Recorded {
        if self.kind == job.kind && self.payload == job.payload {
            Recorded::Existing(self.id)
        } else {
            Recorded::Conflict(self.id)
        }
    }
}

/// A holder found for a taken key: by internal key, or by account and producer key.
#[derive(Debug, sqlx::FromRow)]
struct KeyHolder {
    account_id: Option<i64>,
    internal_key: Option<String>,
    caller_key: Option<String>,
    #[sqlx(flatten)]
    holder: Holder,
}

/// The job holding `key` in `account_id` (a producer's key) or in the whole ledger (an
/// internal one).
async fn holder(
    tx: &mut Tx,
    account_id: Option<i64>,
    key: &IdempotencyKey,
) -> Result<Option<Holder>, StoreError> {
    match key {
        IdempotencyKey::Caller(key) => fetch_optional!(
            tx,
            Holder,
            "SELECT id, kind, payload FROM jobs WHERE account_id = $1 AND caller_key = $2",
            account_id,
            key.as_str()
        ),
        IdempotencyKey::Internal(key) => fetch_optional!(
            tx,
            Holder,
            "SELECT id, kind, payload FROM jobs WHERE idempotency_key = $1",
            key.as_str()
        ),
    }
}

/// Records `job` as queued. With its idempotency key already used, records nothing and
/// says which job holds the key, and whether that job is this one again (same kind and
/// payload) or another.
pub async fn insert(tx: &mut Tx, job: &NewJob) -> Result<Recorded, StoreError> {
    if let Some(key) = &job.idempotency_key
        && let Some(holder) = holder(tx, job.account_id, key).await?
    {
        return Ok(holder.answer(job));
    }
    let key = job.idempotency_key.as_ref();
    // No conflict target: either unique index (a producer's key in its account, an
    // internal key in the ledger) turns the insert into nothing.
    let changed = execute!(
        tx,
        "INSERT INTO jobs (id, kind, account_id, payload, idempotency_key, caller_key, state,
                           attempts, max_attempts, run_at_ms, created_at_ms, pushed_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $8, $9, $10)
         ON CONFLICT DO NOTHING",
        job.id,
        job.kind.as_str(),
        job.account_id,
        job.payload.as_str(),
        key.and_then(IdempotencyKey::internal_key),
        key.and_then(IdempotencyKey::caller),
        job.max_attempts,
        job.run_at_ms,
        job.created_at_ms,
        job.pushed_at_ms
    )?;
    if changed == 1 {
        return Ok(Recorded::Created(job.id));
    }
    // Lost a race for the key to a concurrent insert: report the winner.
    let key = key.ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
    Ok(holder(tx, job.account_id, key)
        .await?
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?
        .answer(job))
}

/// Records many jobs at once, each on its own: one statement on PostgreSQL, one
/// transaction on SQLite. Returns, in order, what became of each job; a job whose key was
/// taken, by an earlier job or by one before it in `jobs`, is not recorded and names the
/// job holding the key ([`Recorded::Existing`] or [`Recorded::Conflict`]); the others are
/// recorded all the same. The group enqueuer's path, where each job is another caller's.
pub async fn insert_many_now(store: &Store, jobs: &[NewJob]) -> Result<Vec<Recorded>, StoreError> {
    match store {
        Store::Postgres(pool) => {
            let mut connection = pool.acquire().await?;
            insert_many_pg(&mut connection, jobs).await
        }
        Store::Sqlite(_) => {
            let mut tx = store.begin().await?;
            let recorded = insert_many(&mut tx, jobs).await?;
            tx.commit().await?;
            Ok(recorded)
        }
    }
}

/// [`insert_many_now`] in the caller's transaction: a batch that must be recorded all or
/// none rolls back when a job of it conflicts.
pub async fn insert_many(tx: &mut Tx, jobs: &[NewJob]) -> Result<Vec<Recorded>, StoreError> {
    match tx {
        Tx::Postgres(tx) => insert_many_pg(tx, jobs).await,
        Tx::Sqlite(_) => {
            let mut recorded = Vec::with_capacity(jobs.len());
            for job in jobs {
                recorded.push(insert(tx, job).await?);
            }
            Ok(recorded)
        }
    }
}

/// One INSERT of every job (UNNEST of one array per column): the API's hot path, where the
/// group enqueuer gathers the requests of many connections. Only when a key was taken does
/// a second statement look up the holders.
async fn insert_many_pg(
    connection: &mut sqlx::PgConnection,
    jobs: &[NewJob],
) -> Result<Vec<Recorded>, StoreError> {
    let column = |f: fn(&NewJob) -> i64| jobs.iter().map(f).collect::<Vec<i64>>();
    let keys = |f: fn(&IdempotencyKey) -> Option<&str>| {
        jobs.iter()
            .map(|job| job.idempotency_key.as_ref().and_then(f).map(str::to_string))
            .collect::<Vec<Option<String>>>()
    };
    let inserted: Vec<(Uuid,)> = sqlx::query_as(
        "INSERT INTO jobs (id, kind, account_id, payload, idempotency_key, caller_key, state,
                           attempts, max_attempts, run_at_ms, created_at_ms, pushed_at_ms)
         SELECT id, kind, account_id, payload, idempotency_key, caller_key, 'queued', 0,
                max_attempts, run_at_ms, created_at_ms, pushed_at_ms
           FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::text[],
                       $6::text[], $7::int4[], $8::int8[], $9::int8[], $10::int8[])
             AS new (id, kind, account_id, payload, idempotency_key, caller_key,
                     max_attempts, run_at_ms, created_at_ms, pushed_at_ms)
         ON CONFLICT DO NOTHING
         RETURNING id",
    )
    .bind(jobs.iter().map(|job| job.id).collect::<Vec<_>>())
    .bind(jobs.iter().map(|job| job.kind.clone()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|job| job.account_id).collect::<Vec<_>>())
    .bind(
        jobs.iter()
            .map(|job| job.payload.clone())
            .collect::<Vec<_>>(),
    )
    .bind(keys(IdempotencyKey::internal_key))
    .bind(keys(IdempotencyKey::caller))
    .bind(jobs.iter().map(|job| job.max_attempts).collect::<Vec<_>>())
    .bind(column(|job| job.run_at_ms))
    .bind(column(|job| job.created_at_ms))
    .bind(jobs.iter().map(|job| job.pushed_at_ms).collect::<Vec<_>>())
    .fetch_all(&mut *connection)
    .await?;
    let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().map(|(id,)| id).collect();
    let taken: Vec<&NewJob> = jobs
        .iter()
        .filter(|job| !inserted.contains(&job.id))
        .collect();
    // The holder of each taken key, by (account, caller key) or by internal key.
    type Place = (Option<i64>, IdempotencyKey);
    let mut holders: std::collections::HashMap<Place, Holder> = Default::default();
    if !taken.is_empty() {
        let internal: Vec<String> = taken
            .iter()
            .filter_map(|job| job.idempotency_key.as_ref()?.internal_key())
            .map(str::to_string)
            .collect();
        let (accounts, callers): (Vec<Option<i64>>, Vec<String>) = taken
            .iter()
            .filter_map(|job| Some((job.account_id, job.idempotency_key.as_ref()?.caller()?)))
            .map(|(account, key)| (account, key.to_string()))
            .unzip();
        let rows: Vec<KeyHolder> = sqlx::query_as(
            "SELECT NULL::int8 AS account_id, idempotency_key AS internal_key,
                    NULL::text AS caller_key, id, kind, payload
               FROM jobs WHERE idempotency_key = ANY($1)
             UNION ALL
             SELECT jobs.account_id, NULL::text, jobs.caller_key, id, kind, payload
               FROM jobs JOIN UNNEST($2::int8[], $3::text[]) AS taken (account_id, caller_key)
                 ON jobs.account_id = taken.account_id AND jobs.caller_key = taken.caller_key",
        )
        .bind(&internal)
        .bind(&accounts)
        .bind(&callers)
        .fetch_all(&mut *connection)
        .await?;
        for row in rows {
            let place = match (row.internal_key, row.caller_key) {
                (Some(key), _) => (None, IdempotencyKey::Internal(key)),
                (None, Some(key)) => (row.account_id, IdempotencyKey::Caller(key)),
                (None, None) => continue,
            };
            holders.insert(place, row.holder);
        }
    }
    jobs.iter()
        .map(|job| {
            if inserted.contains(&job.id) {
                return Ok(Recorded::Created(job.id));
            }
            let place = match job.idempotency_key.clone() {
                Some(key @ IdempotencyKey::Internal(_)) => (None, key),
                Some(key @ IdempotencyKey::Caller(_)) => (job.account_id, key),
                None => return Err(StoreError::Database(sqlx::Error::RowNotFound)),
            };
            let holder = holders
                .get(&place)
                .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
            Ok(
                if holder.kind == job.kind && holder.payload == job.payload {
                    Recorded::Existing(holder.id)
                } else {
                    Recorded::Conflict(holder.id)
                },
            )
        })
        .collect()
}
