//! Events: one per completed change, recorded in the transaction of the job that made it,
//! published once, in order: numbered for the stream ([`assign_stream_seqs`]) and committed
//! before the publish, so that a publish repeated (a crash before the mark) is refused by
//! Redis rather than added twice.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Dialect, Store, StoreError, Tx, execute, fetch_all, fetch_scalar};

#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub account_id: Option<i64>,
    pub user_id: Option<i64>,
    pub job_id: Uuid,
    pub at: DateTime<Utc>,
    /// JSON array of what changed.
    pub changes: &'a str,
    /// Set when nothing publishes events beyond this table (the embedded default).
    pub published_at: Option<DateTime<Utc>>,
}

pub async fn record(tx: &mut Tx, event: &NewEvent<'_>) -> Result<(), StoreError> {
    record_in_batch(tx, event, 0).await
}

/// Records the event of one batch of a job that commits in many transactions (a sweep):
/// `batch` tells a job's events apart (`events (job_id, batch)` is unique); 0 for a job
/// that commits once.
pub async fn record_in_batch(
    tx: &mut Tx,
    event: &NewEvent<'_>,
    batch: i64,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "INSERT INTO events (kind, account_id, user_id, job_id, batch, at, changes, published_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        event.kind,
        event.account_id,
        event.user_id,
        event.job_id,
        batch,
        event.at,
        event.changes,
        event.published_at
    )?;
    Ok(())
}

/// [`record_in_batch`] for many events of one transaction, each `(event, batch)`: one
/// statement on PostgreSQL (a sweep's batch changes users of many accounts, an event each).
pub async fn record_many_in_batch(
    tx: &mut Tx,
    events: &[(NewEvent<'_>, i64)],
) -> Result<(), StoreError> {
    let pg = match tx {
        Tx::Postgres(pg) if events.len() > 1 => pg,
        _ => {
            for (event, batch) in events {
                record_in_batch(tx, event, *batch).await?;
            }
            return Ok(());
        }
    };
    let column = |f: fn(&NewEvent<'_>) -> Option<i64>| {
        events.iter().map(|(event, _)| f(event)).collect::<Vec<_>>()
    };
    sqlx::query(
        "INSERT INTO events (kind, account_id, user_id, job_id, batch, at, changes, published_at)
         SELECT kind, account_id, user_id, job_id, batch, at, changes, published_at
           FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::uuid[], $5::int8[],
                       $6::timestamptz[], $7::text[], $8::timestamptz[]) WITH ORDINALITY
             AS new (kind, account_id, user_id, job_id, batch, at, changes, published_at, ord)
          ORDER BY ord",
    )
    .bind(
        events
            .iter()
            .map(|(event, _)| event.kind)
            .collect::<Vec<_>>(),
    )
    .bind(column(|event| event.account_id))
    .bind(column(|event| event.user_id))
    .bind(
        events
            .iter()
            .map(|(event, _)| event.job_id)
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|(_, batch)| *batch).collect::<Vec<_>>())
    .bind(events.iter().map(|(event, _)| event.at).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|(event, _)| event.changes)
            .collect::<Vec<_>>(),
    )
    .bind(
        events
            .iter()
            .map(|(event, _)| event.published_at)
            .collect::<Vec<_>>(),
    )
    .execute(&mut **pg)
    .await?;
    Ok(())
}

/// An event as subscribers read it (the JSON of a stream entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EventRow {
    #[serde(rename = "event_id")]
    pub id: i64,
    pub kind: String,
    pub account_id: Option<i64>,
    pub user_id: Option<i64>,
    pub job_id: Uuid,
    pub at: DateTime<Utc>,
    /// JSON array: `[{"entity": "user", "entity_id": 4, "action": "deactivated"}, …]`.
    #[serde(serialize_with = "raw_json")]
    pub changes: String,
}

fn raw_json<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    value.serialize(serializer)
}

const COLUMNS: &str = "id, kind, account_id, user_id, job_id, at, changes";

/// An event numbered for the stream: its entry id there is `0-<stream_seq>`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NumberedEvent {
    pub stream_seq: i64,
    #[sqlx(flatten)]
    pub event: EventRow,
}

/// The advisory lock key of the event publisher (PostgreSQL; per database).
const PUBLISHER_LOCK: i64 = 0x6c69_6665_6576_6e74; // "lifeevnt"

/// Held by the one process publishing events at a time; [`PublisherLock::release`] it.
pub struct PublisherLock(Option<Tx>);

impl PublisherLock {
    pub async fn release(self) -> Result<(), StoreError> {
        match self.0 {
            Some(tx) => tx.rollback().await,
            None => Ok(()),
        }
    }
}

/// Takes the publisher's lock if no other process holds it (`None`: one does, and will
/// publish what there is). PostgreSQL: an advisory lock held by a transaction open until
/// the release, so it goes with its connection should the process die. SQLite: every write
/// takes the database's one write lock anyway, and the publication stays correct with
/// publishers racing (see [`assign_stream_seqs`]); there is nothing to hold.
pub async fn lock_publisher(store: &Store) -> Result<Option<PublisherLock>, StoreError> {
    match store.dialect() {
        Dialect::Sqlite => Ok(Some(PublisherLock(None))),
        Dialect::Postgres => {
            let mut tx = store.begin_read().await?;
            let locked: bool = fetch_scalar!(
                &mut tx,
                "SELECT pg_try_advisory_xact_lock($1)",
                PUBLISHER_LOCK
            )?;
            if locked {
                Ok(Some(PublisherLock(Some(tx))))
            } else {
                tx.rollback().await?;
                Ok(None)
            }
        }
    }
}

/// Whether any event waits to be published: the cheap look of an idle publisher.
pub async fn any_unpublished(tx: &mut Tx) -> Result<bool, StoreError> {
    let found: Option<i64> = fetch_scalar!(
        tx,
        "SELECT MAX(id) FROM (SELECT id FROM events WHERE published_at IS NULL LIMIT 1) AS one"
    )?;
    Ok(found.is_some())
}

/// Numbers at most `limit` unpublished, unnumbered events for the stream, in id order,
/// following the highest number given so far. Commit before publishing them: the number
/// fixes an event's entry id, so a publish repeated after a crash is refused by Redis.
///
/// Ids are given at insert and committed out of order: an event with a lower id may become
/// visible after a higher one was numbered; it gets the next number, not a place in the
/// past (which Redis would refuse as published). Two numberings at once both start at the
/// highest number + 1, so the unique index lets one commit and fails the other: committed
/// numbers are consecutive, and whoever sees number n sees every number below it.
pub async fn assign_stream_seqs(tx: &mut Tx, limit: i64) -> Result<u64, StoreError> {
    execute!(
        tx,
        "UPDATE events SET stream_seq = numbered.top + numbered.n
           FROM (SELECT id,
                        (SELECT COALESCE(MAX(stream_seq), 0) FROM events) AS top,
                        ROW_NUMBER() OVER (ORDER BY id) AS n
                   FROM events
                  WHERE published_at IS NULL AND stream_seq IS NULL
                  ORDER BY id LIMIT $1) AS numbered
          WHERE events.id = numbered.id",
        limit
    )
}

/// Numbered events not marked published yet, by number: what a publisher hands to the
/// stream (some may be there already, published by an attempt whose mark was lost).
pub async fn numbered_unpublished(
    tx: &mut Tx,
    limit: i64,
) -> Result<Vec<NumberedEvent>, StoreError> {
    fetch_all!(
        tx,
        NumberedEvent,
        sqlx::AssertSqlSafe(format!(
            "SELECT stream_seq, {COLUMNS} FROM events
              WHERE published_at IS NULL AND stream_seq IS NOT NULL
              ORDER BY stream_seq LIMIT $1"
        )),
        limit
    )
}

/// Marks the numbered events from `first_seq` to `last_seq` published: they are on the
/// stream.
pub async fn mark_published(
    tx: &mut Tx,
    first_seq: i64,
    last_seq: i64,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    execute!(
        tx,
        "UPDATE events SET published_at = $3
          WHERE stream_seq >= $1 AND stream_seq <= $2 AND published_at IS NULL",
        first_seq,
        last_seq,
        at
    )
}

/// An account's events, oldest first: the feed on the embedded default.
pub async fn for_account(tx: &mut Tx, account_id: i64) -> Result<Vec<EventRow>, StoreError> {
    fetch_all!(
        tx,
        EventRow,
        sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM events WHERE account_id = $1 ORDER BY id"
        )),
        account_id
    )
}
