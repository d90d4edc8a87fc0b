//! One consumer's reading of the stream: delayed jobs promoted when due, entries a dead
//! consumer left pending taken over, new entries read in batches, on a connection of its
//! own.

use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Script};

use super::{Entry, FIELD, GROUP, Message, PROMOTE_CHUNK, RedisTransport, manager_config};
use crate::queue::QueueError;

/// How often a busy reader promotes due delayed jobs.
const PROMOTE_EVERY: Duration = Duration::from_millis(50);

/// Moves at most ARGV[2] due members of the delayed set into the stream, in score order.
const PROMOTE: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'job', member)
  redis.call('ZREM', KEYS[1], member)
end
return #due
"#;

impl RedisTransport {
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

    /// Resets the idle time of an entry `consumer` holds pending (`XCLAIM` to the same
    /// consumer, `JUSTID`: no delivery counted), so `XAUTOCLAIM` does not take a job that is
    /// still running for abandoned. An entry already acknowledged is left alone.
    pub async fn renew_pending(&self, consumer: &str, entry_id: &str) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let _: Vec<String> = redis::cmd("XCLAIM")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(0)
            .arg(entry_id)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
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
