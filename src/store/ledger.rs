//! The job ledger: every accepted job with its state, attempts and errors, and the marker
//! that a job's effects were applied. Times are epoch milliseconds.

use uuid::Uuid;

use super::{Dialect, Store, StoreError, Tx, execute, fetch_all, fetch_optional, fetch_scalar};

/// The lifecycle of a ledger row.
pub mod state {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const DONE: &str = "done";
    pub const DEAD: &str = "dead";
}

/// The idempotency key of a job. A producer's key (HTTP, client, CLI, an outbox row) is
/// scoped to the job's account: two tenants may both send `K-1`. The keys the service
/// derives for its own follow-up jobs (`mail::send:<email>`, `license::release:…`,
/// `outbox:<row>`) live in a space of their own (another column, another unique index),
/// so no producer's key can ever take one of them first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IdempotencyKey {
    /// A producer's key, unique per account.
    Caller(String),
    /// A key the service derives for a job it records itself, unique across the ledger.
    Internal(String),
}

impl IdempotencyKey {
    /// A key the service derives for a job it records itself.
    pub fn internal(key: impl Into<String>) -> Self {
        IdempotencyKey::Internal(key.into())
    }

    pub fn as_str(&self) -> &str {
        match self {
            IdempotencyKey::Caller(key) | IdempotencyKey::Internal(key) => key,
        }
    }

    fn caller(&self) -> Option<&str> {
        match self {
            IdempotencyKey::Caller(key) => Some(key),
            IdempotencyKey::Internal(_) => None,
        }
    }

    fn internal_key(&self) -> Option<&str> {
        match self {
            IdempotencyKey::Internal(key) => Some(key),
            IdempotencyKey::Caller(_) => None,
        }
    }
}

/// A plain string is a producer's key: the safe default, scoped to the account. An internal
/// key is only ever made on purpose, with [`IdempotencyKey::internal`].
impl From<String> for IdempotencyKey {
    fn from(key: String) -> Self {
        IdempotencyKey::Caller(key)
    }
}

impl From<&str> for IdempotencyKey {
    fn from(key: &str) -> Self {
        IdempotencyKey::Caller(key.to_string())
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to record in the ledger.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub kind: String,
    pub account_id: Option<i64>,
    pub payload: String,
    pub idempotency_key: Option<IdempotencyKey>,
    pub max_attempts: i32,
    pub run_at_ms: i64,
    pub created_at_ms: i64,
    /// Set when the transport holds the job once the row commits (the database transport);
    /// `None` until a push to Redis succeeds.
    pub pushed_at_ms: Option<i64>,
}

/// A job as the queue hands it to a worker.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub kind: String,
    pub payload: String,
    /// The attempt now starting, from 1.
    pub attempts: i32,
    pub max_attempts: i32,
    /// When the service recorded the job (its clock, ms): when it was asked for, however
    /// late it runs.
    pub created_at_ms: i64,
}

/// A ledger row, for `jobs show`, the API and tests.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRecord {
    pub id: Uuid,
    pub kind: String,
    pub account_id: Option<i64>,
    pub payload: String,
    /// The producer's idempotency key (scoped to the account), if it sent one.
    pub idempotency_key: Option<String>,
    /// The key the service derived for a job it recorded itself (`mail::send:<email>`).
    pub internal_key: Option<String>,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at_ms: i64,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

/// What recording a job did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The job is recorded under its own id.
    Created(Uuid),
    /// Its key was already used by this job, of the same kind and payload (a producer's
    /// retry): nothing recorded.
    Existing(Uuid),
    /// Its key was already used by this job, of another kind or payload: nothing recorded.
    /// A different job under a used key is a producer's mistake, not a retry, and must not
    /// pass for one.
    Conflict(Uuid),
}

impl Recorded {
    /// The job that holds the key (or the new job).
    pub fn id(self) -> Uuid {
        match self {
            Recorded::Created(id) | Recorded::Existing(id) | Recorded::Conflict(id) => id,
        }
    }
}

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
) -> Result<Vec<ClaimedJob>, StoreError> {
    let mut tx = store.begin().await?;
    let claimed = match tx.dialect() {
        Dialect::Postgres => fetch_all!(
            &mut tx,
            ClaimedJob,
            "UPDATE jobs SET state = 'running', locked_by = $1, locked_at_ms = $2,
                             attempts = attempts + 1
              WHERE id IN (SELECT id FROM jobs
                            WHERE state = 'queued' AND run_at_ms <= $2
                            ORDER BY run_at_ms, id LIMIT $3
                            FOR UPDATE SKIP LOCKED)
              RETURNING id, kind, payload, attempts, max_attempts, created_at_ms",
            worker,
            now_ms,
            limit
        )?,
        Dialect::Sqlite => fetch_all!(
            &mut tx,
            ClaimedJob,
            "UPDATE jobs SET state = 'running', locked_by = $1, locked_at_ms = $2,
                             attempts = attempts + 1
              WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_due
                            WHERE state = 'queued' AND run_at_ms <= $2
                            ORDER BY run_at_ms, id LIMIT $3)
              RETURNING id, kind, payload, attempts, max_attempts, created_at_ms",
            worker,
            now_ms,
            limit
        )?,
    };
    tx.commit().await?;
    Ok(claimed)
}

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

/// A claim being put back: the row as it was held.
#[derive(Debug, Clone, sqlx::FromRow)]
struct HeldRow {
    id: Uuid,
    attempts: i32,
    locked_by: Option<String>,
}

/// Puts back the jobs held past the visibility timeout (claimed before `stale_before_ms`:
/// their worker died or hung), recording for each attempt why it ended.
/// `pushed_at_ms` as in [`settle_many`]. Returns how many.
pub async fn requeue_stale(
    store: &Store,
    stale_before_ms: i64,
    visibility_timeout_secs: u64,
    now_ms: i64,
    pushed_at_ms: Option<i64>,
) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let sql = lock_held("locked_at_ms < $1", tx.dialect());
    let held = fetch_all!(&mut tx, HeldRow, sqlx::AssertSqlSafe(sql), stale_before_ms)?;
    let requeued = put_back(&mut tx, &held, now_ms, pushed_at_ms, |locked_by| {
        format!(
            "not finished within the visibility timeout ({visibility_timeout_secs} s) by {locked_by}; put back"
        )
    })
    .await?;
    tx.commit().await?;
    Ok(requeued)
}

/// Puts back, in `tx`, every job held by a consumer whose name starts with `prefix` (the
/// consumers of one process), recording `reason` as how each attempt ended.
pub async fn requeue_held_by(
    tx: &mut Tx,
    prefix: &str,
    reason: &str,
    now_ms: i64,
    pushed_at_ms: Option<i64>,
) -> Result<u64, StoreError> {
    let sql = lock_held("substr(locked_by, 1, length($1)) = $1", tx.dialect());
    let held = fetch_all!(&mut *tx, HeldRow, sqlx::AssertSqlSafe(sql), prefix)?;
    put_back(tx, &held, now_ms, pushed_at_ms, |locked_by| {
        format!("{reason} (held by {locked_by}); put back")
    })
    .await
}

/// Gives back claims that never started (fetched ahead, then the worker stopped): the
/// attempt they counted did not happen, so it is uncounted. Only rows still claimed by a
/// consumer starting with `prefix` change. `pushed_at_ms` as in [`settle_many`].
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

/// The running rows matching `condition` (over `$1`), locked on PostgreSQL so that a
/// worker settling one meanwhile is waited for and the row re-read.
fn lock_held(condition: &str, dialect: Dialect) -> String {
    let lock = match dialect {
        Dialect::Postgres => " FOR UPDATE",
        Dialect::Sqlite => "",
    };
    format!(
        "SELECT id, attempts, locked_by FROM jobs WHERE state = 'running' AND {condition}{lock}"
    )
}

/// Queues `held` again, each attempt's end recorded with the reason `reason_of` gives for
/// its holder. Returns how many.
async fn put_back(
    tx: &mut Tx,
    held: &[HeldRow],
    now_ms: i64,
    pushed_at_ms: Option<i64>,
    reason_of: impl Fn(&str) -> String,
) -> Result<u64, StoreError> {
    for row in held {
        let reason = reason_of(row.locked_by.as_deref().unwrap_or("an unknown worker"));
        execute!(
            &mut *tx,
            "INSERT INTO job_attempt_errors (job_id, attempt, error, permanent, at_ms)
             VALUES ($1, $2, $3, FALSE, $4)
             ON CONFLICT (job_id, attempt) DO NOTHING",
            row.id,
            row.attempts,
            reason.as_str(),
            now_ms
        )?;
        execute!(
            &mut *tx,
            "UPDATE jobs SET state = 'queued', locked_by = NULL, locked_at_ms = NULL,
                             pushed_at_ms = $2, last_error = $3
              WHERE id = $1",
            row.id,
            pushed_at_ms,
            reason.as_str()
        )?;
    }
    Ok(held.len() as u64)
}

/// Queues a job again for `now_ms`, whatever its state; its attempts and errors stay.
/// Returns the job, or `None` when there is no such job.
/// `pushed_at_ms` as in [`settle_many`].
pub async fn requeue(
    store: &Store,
    id: Uuid,
    now_ms: i64,
    pushed_at_ms: Option<i64>,
) -> Result<Option<ClaimedJob>, StoreError> {
    let mut tx = store.begin().await?;
    let job = fetch_optional!(
        &mut tx,
        ClaimedJob,
        "UPDATE jobs SET state = 'queued', run_at_ms = $2, locked_by = NULL, locked_at_ms = NULL,
                         finished_at_ms = NULL, pushed_at_ms = $3
          WHERE id = $1
          RETURNING id, kind, payload, attempts, max_attempts, created_at_ms",
        id,
        now_ms,
        pushed_at_ms
    )?;
    tx.commit().await?;
    Ok(job)
}

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

/// Whether the effects of `job_id` were already committed.
pub async fn already_applied(tx: &mut Tx, job_id: Uuid) -> Result<bool, StoreError> {
    let count: i64 = fetch_scalar!(
        tx,
        "SELECT COUNT(*) FROM applied_jobs WHERE job_id = $1",
        job_id
    )?;
    Ok(count > 0)
}

/// Marks the effects of `job_id` as applied, in the transaction that applies them.
pub async fn mark_applied(
    tx: &mut Tx,
    job_id: Uuid,
    kind: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "INSERT INTO applied_jobs (job_id, kind, applied_at) VALUES ($1, $2, $3)",
        job_id,
        kind,
        at
    )?;
    Ok(())
}

/// "$from, $from+1, …": the placeholders of a list of `count` values.
fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

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
    mark_pushed_in(&mut tx, ids, now_ms).await?;
    tx.commit().await
}

/// [`mark_pushed`] inside the caller's transaction.
pub async fn mark_pushed_in(tx: &mut Tx, ids: &[Uuid], now_ms: i64) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE jobs SET pushed_at_ms = $1 WHERE id IN ({})",
        placeholders(2, ids.len())
    );
    match tx {
        Tx::Postgres(tx) => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms);
            for id in ids {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await?;
        }
        Tx::Sqlite(tx) => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms);
            for id in ids {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Claims, for `worker`, the jobs of a batch the transport delivered: those still queued.
/// A job the transport delivered twice (pushed again by the reconciler), one finished
/// meanwhile, or one still held by a worker presumed dead (the rescue puts it back first,
/// recording why its attempt ended) is not returned: the caller drops its delivery, so a job
/// never runs twice at once. Rows this very claim took (same worker, same `now_ms`) are
/// returned again: a retry after a commit whose answer was lost gets them back rather than
/// dropping them.
pub async fn claim_delivered(
    store: &Store,
    worker: &str,
    ids: &[Uuid],
    now_ms: i64,
) -> Result<Vec<ClaimedJob>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    const SET: &str = "UPDATE jobs SET state = 'running', locked_by = $1, locked_at_ms = $2,
                         attempts = CASE WHEN state = 'running' AND locked_by = $1
                                              AND locked_at_ms = $2
                                         THEN attempts ELSE attempts + 1 END";
    const CLAIMABLE: &str = "(state = 'queued'
                 OR (state = 'running' AND locked_by = $1 AND locked_at_ms = $2))
          RETURNING id, kind, payload, attempts, max_attempts, created_at_ms";
    match store {
        // One statement, committed on its own: no BEGIN and COMMIT round trips, and one
        // prepared statement whatever the batch size.
        Store::Postgres(pool) => Ok(sqlx::query_as::<_, ClaimedJob>(sqlx::AssertSqlSafe(format!(
            "{SET} WHERE id = ANY($3) AND {CLAIMABLE}"
        )))
        .bind(worker)
        .bind(now_ms)
        .bind(ids)
        .fetch_all(pool)
        .await?),
        Store::Sqlite(pool) => {
            let sql = format!(
                "{SET} WHERE id IN ({}) AND {CLAIMABLE}",
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

/// Deletes up to `limit` finished (done or dead) jobs that finished before `before_ms`,
/// with their attempt errors and applied marks, in one transaction. Returns how many. A
/// pruned job cannot be redelivered into effects: a delivery runs only if it claims its
/// ledger row.
pub async fn prune_finished(store: &Store, before_ms: i64, limit: i64) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let ids: Vec<(Uuid,)> = fetch_all!(
        &mut tx,
        (Uuid,),
        "SELECT id FROM jobs WHERE state IN ('done', 'dead') AND finished_at_ms < $1
          ORDER BY finished_at_ms LIMIT $2",
        before_ms,
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
