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

use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::QueueError;
use crate::store::ledger::ClaimedJob;

const GROUP: &str = "workers";
const FIELD: &str = "job";
/// Delayed jobs moved to the stream per round trip: bounded, whatever the backlog.
const PROMOTE_CHUNK: usize = 500;
/// How often a busy reader promotes due delayed jobs.
const PROMOTE_EVERY: Duration = Duration::from_millis(50);

/// A job as it travels through Redis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: Uuid,
    pub kind: String,
    pub payload: String,
    /// Attempts already made.
    pub attempts: i32,
    pub max_attempts: i32,
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

/// Moves at most ARGV[2] due members of the delayed set into the stream, in score order.
const PROMOTE: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'job', member)
  redis.call('ZREM', KEYS[1], member)
end
return #due
"#;

/// Appends events (ARGV: max length, then number and JSON of each, numbers increasing) to
/// the stream KEYS[1] as entries `0-<number>`, skipping those not above the stream's last
/// id: they were published before. Compared here rather than left to XADD's refusal, so one
/// event already there does not stop the rest, and atomically, so two publishers at once
/// still add each event once, in order. A stream whose last id has a time part was written
/// by a version that let Redis choose the ids: an error, not a silent skip of every event.
const PUBLISH: &str = r#"
local last = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      local ms, seq = string.match(info[i + 1], '^(%d+)-(%d+)$')
      if tonumber(ms) ~= 0 then
        return redis.error_reply('events stream ' .. KEYS[1] .. ' holds entries with ids chosen by Redis (written by an earlier version): set queue.events_stream to a new stream, or rename this one')
      end
      last = tonumber(seq)
    end
  end
end
local added = 0
for i = 2, #ARGV, 2 do
  local number = tonumber(ARGV[i])
  if number > last then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '0-' .. ARGV[i], 'event', ARGV[i + 1])
    last = number
    added = added + 1
  end
end
return added
"#;
static PUBLISH_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(PUBLISH));

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

    /// Appends numbered events `(stream_seq, json)`, in increasing number order, to
    /// `stream` (field `event`) under the entry ids `0-<stream_seq>`, trimming it to about
    /// `max_len`, in one round trip. An event whose id is not above the stream's last one
    /// is there already (published by an attempt whose mark was lost) and is not added
    /// again. Returns how many were added.
    pub async fn publish(
        &self,
        stream: &str,
        max_len: usize,
        events: &[(i64, String)],
    ) -> Result<u64, QueueError> {
        if events.is_empty() {
            return Ok(0);
        }
        let mut invocation = PUBLISH_SCRIPT.key(stream);
        invocation.arg(max_len);
        for (stream_seq, event) in events {
            invocation.arg(*stream_seq).arg(event);
        }
        let mut conn = self.conn.clone();
        let added: u64 = invocation.invoke_async(&mut conn).await?;
        Ok(added)
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

    /// A reader for one consumer, on its own connection: its blocking read must not hold
    /// up the pushes and acknowledgements of the shared connection.
    pub async fn reader(
        &self,
        consumer: String,
        block: Duration,
    ) -> Result<RedisReader, QueueError> {
        let conn = self
            .client
            .get_connection_manager_with_config(manager_config(block + Duration::from_secs(5)))
            .await?;
        Ok(RedisReader {
            transport: self.clone(),
            conn,
            consumer,
            block,
            last_reclaim: None,
            last_promote: None,
            promote: Script::new(PROMOTE),
        })
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

pub struct RedisReader {
    transport: RedisTransport,
    conn: ConnectionManager,
    consumer: String,
    block: Duration,
    last_reclaim: Option<Instant>,
    last_promote: Option<Instant>,
    promote: Script,
}

impl RedisReader {
    /// Reads up to `count` entries: first promotes due delayed jobs, then (every
    /// visibility timeout / 4) takes over entries a dead consumer left pending, then reads
    /// new entries, blocking up to the configured time when there are none.
    pub async fn read(&mut self, count: usize, now_ms: i64) -> Result<Vec<Entry>, QueueError> {
        let keys = self.transport.keys.clone();
        // Promoting costs a round trip: while jobs stream in, once per PROMOTE_EVERY is
        // enough (a delayed job is promoted that much late at most); a full chunk means
        // more are due, so the next read promotes again.
        if self
            .last_promote
            .is_none_or(|at| at.elapsed() >= PROMOTE_EVERY)
        {
            let promoted: usize = self
                .promote
                .key(&keys.delayed)
                .key(&keys.stream)
                .arg(now_ms)
                .arg(PROMOTE_CHUNK)
                .invoke_async(&mut self.conn)
                .await?;
            self.last_promote = (promoted < PROMOTE_CHUNK).then(Instant::now);
        }

        let reclaim_every = self.transport.visibility_timeout / 4;
        if self
            .last_reclaim
            .is_none_or(|at| at.elapsed() >= reclaim_every)
        {
            self.last_reclaim = Some(Instant::now());
            let reply: StreamAutoClaimReply = self
                .conn
                .xautoclaim_options(
                    &keys.stream,
                    GROUP,
                    &self.consumer,
                    self.transport.visibility_timeout.as_millis() as u64,
                    "0-0",
                    StreamAutoClaimOptions::default().count(count),
                )
                .await
                .map_err(|e| self.on_error(e))?;
            let reclaimed = self.decode(reply.claimed).await?;
            if !reclaimed.is_empty() {
                tracing::warn!(
                    count = reclaimed.len(),
                    "took over jobs a dead worker left pending"
                );
                return Ok(reclaimed);
            }
        }

        let options = StreamReadOptions::default()
            .group(GROUP, &self.consumer)
            .count(count)
            .block(self.block.as_millis() as usize);
        let reply: Option<StreamReadReply> = self
            .conn
            .xread_options(&[&keys.stream], &[">"], &options)
            .await
            .map_err(|e| self.on_error(e))?;
        let ids = reply
            .map(|reply| reply.keys.into_iter().flat_map(|key| key.ids).collect())
            .unwrap_or_default();
        self.decode(ids).await
    }

    /// Decodes entries; one that is not a job of ours (written by hand, corrupt) is logged
    /// and removed, so it is not delivered again forever. The ledger still holds every job
    /// that was accepted, so nothing accepted is lost this way.
    async fn decode(&self, ids: Vec<redis::streams::StreamId>) -> Result<Vec<Entry>, QueueError> {
        let mut entries = Vec::with_capacity(ids.len());
        let mut unreadable = Vec::new();
        for id in ids {
            let raw: Option<String> = id.get(FIELD);
            match raw.as_deref().map(serde_json::from_str::<Message>) {
                Some(Ok(message)) => entries.push(Entry {
                    entry_id: id.id,
                    message,
                }),
                _ => {
                    tracing::error!(entry = %id.id, "unreadable stream entry removed");
                    unreadable.push(id.id);
                }
            }
        }
        if !unreadable.is_empty() {
            self.transport.settle(&unreadable, &[]).await?;
        }
        Ok(entries)
    }

    /// After a Redis restart the group is gone (NOGROUP): recreate it in the background of
    /// the next read, so the consumer keeps consuming instead of stopping for good.
    fn on_error(&self, error: redis::RedisError) -> QueueError {
        if error.code() == Some("NOGROUP") {
            let transport = self.transport.clone();
            tokio::spawn(async move {
                if let Err(error) = transport.ensure_group().await {
                    tracing::warn!(%error, "could not recreate the consumer group");
                }
            });
        }
        error.into()
    }
}
