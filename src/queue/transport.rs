//! The transport behind one interface: what carries a recorded job to the workers. The
//! `database` transport is the ledger table itself (a row is its own queue entry, so every
//! method here is a no-op); `redis` hands jobs to Redis Streams after their commit. This
//! is the one place, with [`super::redis`], that knows there are two: the rest of the queue
//! calls these methods and never asks which transport it has.

use std::time::Duration;

use crate::config::{QueueBackend, QueueSettings};

use super::QueueError;
use super::redis::{Entry, Message, RedisReader, RedisTransport};

#[derive(Clone, Debug)]
pub(super) enum Transport {
    Database,
    Redis(Box<RedisTransport>),
}

impl Transport {
    pub(super) async fn connect(settings: &QueueSettings) -> Result<Self, QueueError> {
        Ok(match settings.backend {
            QueueBackend::Database => Self::Database,
            QueueBackend::Redis => Self::Redis(Box::new(
                RedisTransport::connect(
                    settings.redis_url.expose(),
                    &settings.namespace,
                    Duration::from_secs(settings.visibility_timeout_secs),
                )
                .await?,
            )),
        })
    }

    /// Whether a job must be handed to the transport once its row commits (Redis); the
    /// database transport holds it in the row itself.
    pub(super) fn pushes(&self) -> bool {
        matches!(self, Self::Redis(_))
    }

    /// Whether events go out on a Redis stream (else the `events` table is the feed).
    pub(super) fn publishes_events(&self) -> bool {
        matches!(self, Self::Redis(_))
    }

    /// What the ledger records of a job's transport when it (re)enters the queue: the
    /// database transport holds it at once; Redis only once a push succeeds.
    pub(super) fn held_by_ledger(&self, now_ms: i64) -> Option<i64> {
        match self {
            Self::Database => Some(now_ms),
            Self::Redis(_) => None,
        }
    }

    /// Pushes messages `(message, run_at_ms)`: due ones to be read now, later ones delayed.
    pub(super) async fn push(
        &self,
        messages: &[(Message, i64)],
        now_ms: i64,
    ) -> Result<(), QueueError> {
        match self {
            Self::Database => Ok(()),
            Self::Redis(redis) => redis.push(messages, now_ms).await,
        }
    }

    /// Acknowledges finished entries and moves the ones to retry later, in one round trip.
    pub(super) async fn settle(
        &self,
        acks: &[String],
        retries: &[(String, Message, i64)],
    ) -> Result<(), QueueError> {
        match self {
            Self::Database => Ok(()),
            Self::Redis(redis) => redis.settle(acks, retries).await,
        }
    }

    /// Puts entries a consumer read back for any consumer to read.
    pub(super) async fn put_back(&self, entries: &[Entry]) -> Result<(), QueueError> {
        match self {
            Self::Database => Ok(()),
            Self::Redis(redis) => redis.put_back(entries).await,
        }
    }

    /// Puts back what the consumers named `prefix…` left pending and drops them. Returns
    /// how many entries went back.
    pub(super) async fn release_consumers(&self, prefix: &str) -> Result<u64, QueueError> {
        match self {
            Self::Database => Ok(0),
            Self::Redis(redis) => redis.release_consumers(prefix).await,
        }
    }

    /// The epoch of the transport's copy of the queue, `None` when the ledger is the queue
    /// (it cannot lose what it does not copy).
    pub(super) async fn epoch(&self) -> Result<Option<String>, QueueError> {
        match self {
            Self::Database => Ok(None),
            Self::Redis(redis) => Ok(Some(redis.epoch().await?)),
        }
    }

    /// Appends numbered events to `stream`; returns how many were added. The database
    /// transport has no stream (its `events` table is the feed): nothing is added.
    pub(super) async fn publish(
        &self,
        stream: &str,
        max_len: usize,
        events: &[(i64, String)],
    ) -> Result<u64, QueueError> {
        match self {
            Self::Database => Ok(0),
            Self::Redis(redis) => redis.publish(stream, max_len, events).await,
        }
    }

    /// The transport's reader for one consumer; `None` when the ledger is the queue and
    /// consumers claim due rows from it directly.
    pub(super) async fn reader(
        &self,
        consumer: &str,
        poll: Duration,
    ) -> Result<Option<RedisReader>, QueueError> {
        match self {
            Self::Database => Ok(None),
            Self::Redis(redis) => Ok(Some(redis.reader(consumer.to_string(), poll).await?)),
        }
    }
}
