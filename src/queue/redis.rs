//! The Redis transport: one Stream per namespace read through a consumer group, and a
//! sorted set of delayed jobs promoted in bounded chunks.
//!
//! Why not apalis-redis 1.0: its fetch script promotes every due task with one Lua
//! `unpack` (8,000 due tasks stop the worker with "too many results to unpack") and its
//! lock script runs `LREM` over the whole active list per task (throughput falls with the
//! backlog). Streams give batched reads (`XREADGROUP COUNT n`), batched acknowledgements,
//! and crash recovery (`XAUTOCLAIM` takes over what a dead consumer left pending).
//!
//! Every key sits under one hash tag, `{lifecycle:<namespace>}`, so Redis Cluster keeps a
//! queue in one slot.
//!
//! Here: the keys, pushes, acknowledgements and the release of a consumer's pending
//! entries. A consumer's reading is in `reader`, the publishing of events in `events`.

mod events;
mod reader;

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamReadOptions, StreamReadReply};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::QueueError;
use crate::store::ledger::ClaimedJob;

pub use reader::RedisReader;

const GROUP: &str = "workers";
const FIELD: &str = "job";
/// Delayed jobs moved to the stream per round trip: bounded, whatever the backlog.
const PROMOTE_CHUNK: usize = 500;

/// A job as it travels through Redis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: Uuid,
    pub kind: String,
    pub payload: String,
    /// Attempts already made.
    pub attempts: i32,
    pub max_attempts: i32,
    /// The recording lock ([`crate::store::ledger::hold_recording`]) of the transaction
    /// that recorded the job, when the job was pushed before it committed: a delivery that
    /// finds no row waits for that transaction before it gives up on the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_under: Option<i32>,
}

impl Message {
    /// A claimed job as it travels again, having made `attempts` attempts.
    pub fn of(job: &ClaimedJob, attempts: i32) -> Self {
        Self {
            id: job.id,
            kind: job.kind.clone(),
            payload: job.payload.clone(),
            attempts,
            max_attempts: job.max_attempts,
            recorded_under: None,
        }
    }
}

#[derive(Clone, Debug)]
struct Keys {
    stream: String,
    delayed: String,
    /// A random value written once: if it is gone or different, Redis lost the queue.
    epoch: String,
}

impl Keys {
    fn new(namespace: &str) -> Self {
        let tag = format!("{{lifecycle:{namespace}}}");
        Self {
            stream: format!("{tag}:stream"),
            delayed: format!("{tag}:delayed"),
            epoch: format!("{tag}:epoch"),
        }
    }
}

#[derive(Clone)]
pub struct RedisTransport {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    visibility_timeout: Duration,
}

impl std::fmt::Debug for RedisTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTransport")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

fn manager_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2))
}

impl RedisTransport {
    pub async fn connect(
        url: &str,
        namespace: &str,
        visibility_timeout: Duration,
    ) -> Result<Self, QueueError> {
        let client = redis::Client::open(url)?;
        let conn = client
            .get_connection_manager_with_config(manager_config(Duration::from_secs(10)))
            .await?;
        let transport = Self {
            client,
            conn,
            keys: Keys::new(namespace),
            visibility_timeout,
        };
        transport.ensure_group().await?;
        Ok(transport)
    }

    /// Creates the stream and its consumer group when missing: at start, and again after a
    /// Redis restart lost them.
    async fn ensure_group(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let created: Result<(), redis::RedisError> = conn
            .xgroup_create_mkstream(&self.keys.stream, GROUP, "0")
            .await;
        match created {
            Err(error) if error.code() != Some("BUSYGROUP") => Err(error.into()),
            _ => Ok(()),
        }
    }

    /// The queue's epoch: a random value written once per Redis lifetime of the queue. When
    /// missing (Redis new, restarted without persistence, flushed), writes a new one and
    /// makes the stream and its group again.
    pub async fn epoch(&self) -> Result<String, QueueError> {
        let mut conn = self.conn.clone();
        if let Some(epoch) = conn.get::<_, Option<String>>(&self.keys.epoch).await? {
            return Ok(epoch);
        }
        let _: bool = conn
            .set_nx(&self.keys.epoch, Uuid::new_v4().to_string())
            .await?;
        self.ensure_group().await?;
        Ok(conn.get(&self.keys.epoch).await?)
    }

    /// Pushes messages: due ones onto the stream, later ones into the delayed set.
    pub async fn push(&self, messages: &[(Message, i64)], now_ms: i64) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (message, run_at_ms) in messages {
            let encoded = serde_json::to_string(message).map_err(QueueError::Encode)?;
            if *run_at_ms <= now_ms {
                pipe.xadd(&self.keys.stream, "*", &[(FIELD, encoded)])
                    .ignore();
            } else {
                pipe.zadd(&self.keys.delayed, encoded, *run_at_ms).ignore();
            }
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// In one round trip: acknowledges and removes finished entries (so the stream stays
    /// small), and moves entries to retry later into the delayed set.
    pub async fn settle(
        &self,
        acks: &[String],
        retries: &[(String, Message, i64)],
    ) -> Result<(), QueueError> {
        if acks.is_empty() && retries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (_, message, run_at_ms) in retries {
            let encoded = serde_json::to_string(message).map_err(QueueError::Encode)?;
            pipe.zadd(&self.keys.delayed, encoded, *run_at_ms).ignore();
        }
        let entries: Vec<&str> = acks
            .iter()
            .map(String::as_str)
            .chain(retries.iter().map(|(entry, _, _)| entry.as_str()))
            .collect();
        pipe.xack(&self.keys.stream, GROUP, &entries)
            .ignore()
            .xdel(&self.keys.stream, &entries)
            .ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Puts entries this consumer read back on the stream at once (a new entry each, the old
    /// one acknowledged and deleted), for any consumer to read.
    pub async fn put_back(&self, entries: &[Entry]) -> Result<(), QueueError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            let encoded = serde_json::to_string(&entry.message).map_err(QueueError::Encode)?;
            pipe.xadd(&self.keys.stream, "*", &[(FIELD, encoded)])
                .ignore();
            ids.push(entry.entry_id.as_str());
        }
        pipe.xack(&self.keys.stream, GROUP, &ids)
            .ignore()
            .xdel(&self.keys.stream, &ids)
            .ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Puts back on the stream the entries `consumer` read but never finished (fetched
    /// ahead and not started when the worker stopped), so another consumer takes them now
    /// rather than after the visibility timeout. Returns how many.
    pub async fn release_pending(&self, consumer: &str) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let mut released = 0;
        loop {
            let options = StreamReadOptions::default()
                .group(GROUP, consumer)
                .count(PROMOTE_CHUNK);
            let reply: Option<StreamReadReply> = conn
                .xread_options(&[&self.keys.stream], &["0"], &options)
                .await?;
            let ids: Vec<redis::streams::StreamId> = reply
                .map(|reply| reply.keys.into_iter().flat_map(|key| key.ids).collect())
                .unwrap_or_default();
            if ids.is_empty() {
                return Ok(released);
            }
            let mut pipe = redis::pipe();
            pipe.atomic();
            let mut entry_ids = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(job) = id.get::<String>(FIELD) {
                    pipe.xadd(&self.keys.stream, "*", &[(FIELD, job)]).ignore();
                }
                entry_ids.push(id.id.as_str());
            }
            pipe.xack(&self.keys.stream, GROUP, &entry_ids)
                .ignore()
                .xdel(&self.keys.stream, &entry_ids)
                .ignore();
            pipe.query_async::<()>(&mut conn).await?;
            released += ids.len() as u64;
        }
    }
    /// Puts back what every consumer whose name starts with `prefix` (the consumers of one
    /// process, dead or shutting down) left pending, and removes those consumers from the
    /// group. Returns how many entries went back on the stream.
    pub async fn release_consumers(&self, prefix: &str) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let consumers: redis::streams::StreamInfoConsumersReply =
            match conn.xinfo_consumers(&self.keys.stream, GROUP).await {
                Ok(reply) => reply,
                // No stream or no group (Redis lost them): nobody holds anything.
                Err(error) if matches!(error.code(), Some("NOGROUP") | Some("ERR")) => {
                    return Ok(0);
                }
                Err(error) => return Err(error.into()),
            };
        let mut released = 0;
        for consumer in consumers
            .consumers
            .iter()
            .filter(|consumer| consumer.name.starts_with(prefix))
        {
            released += self.release_pending(&consumer.name).await?;
            let _: usize = conn
                .xgroup_delconsumer(&self.keys.stream, GROUP, &consumer.name)
                .await?;
        }
        Ok(released)
    }
}

/// One entry read from the stream.
#[derive(Clone, Debug)]
pub struct Entry {
    pub entry_id: String,
    pub message: Message,
}
