//! The queue: the ledger in the database records every accepted job; a transport carries
//! it to the workers: the ledger table itself (`database`, the embedded default) or Redis
//! Streams (`redis`, production). Workers are apalis 1.0 workers over either.

pub mod lifeline;
pub mod maintenance;
pub mod redis;
pub mod retry;
pub mod worker;

use std::time::Duration;

use lifecycle_jobs::Job;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::{QueueBackend, QueueSettings};
pub use crate::store::ledger::IdempotencyKey;
use crate::store::ledger::{self, ClaimedJob, NewJob, Recorded, Settlement};
use crate::store::{Store, StoreError, Tx};
use crate::store::{events, outbox};
use redis::{Message, RedisReader, RedisTransport};
use retry::RetryPolicy;

/// Jobs the reconciler pushes per round trip.
const RECONCILE_CHUNK: i64 = 1000;
/// Finished jobs deleted per transaction.
const PRUNE_CHUNK: i64 = 2000;
/// Outbox rows relayed, and events published, per transaction.
const RELAY_CHUNK: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("cannot encode a job: {0}")]
    Encode(serde_json::Error),
    #[error("could not record the outcome of the attempt: {0}")]
    Settle(String),
    #[error("could not record the job: {0}")]
    Record(String),
    /// The key was already used for another job (another kind or payload) of the same
    /// account: nothing was recorded. A producer's retry sends the same job again and gets
    /// `created: false`; a different job needs a key of its own.
    #[error(
        "idempotency key {key} already used by job {job_id} with another kind or payload; \
         nothing enqueued"
    )]
    IdempotencyConflict { key: String, job_id: Uuid },
    /// A producer's key is scoped to an account: a job without one cannot carry it.
    #[error("idempotency key {0} needs the job's account: producer keys are scoped to it")]
    KeyWithoutAccount(String),
}

/// What a producer asks for.
#[derive(Clone, Debug)]
pub struct EnqueueRequest {
    pub kind: &'static str,
    pub account_id: Option<i64>,
    pub payload: String,
    /// A producer's key (`"crm-42".into()`, scoped to the account) or the service's own
    /// ([`IdempotencyKey::internal`]).
    pub idempotency_key: Option<IdempotencyKey>,
    /// When the job may run; `None`: now.
    pub run_at_ms: Option<i64>,
}

impl EnqueueRequest {
    /// The request for `job`, its secrets sealed ([`Job::seal`]).
    pub fn for_job<J: Job>(
        job: &J,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Self, QueueError> {
        let mut sealed = job.clone();
        sealed.seal();
        Ok(Self {
            kind: J::NAME,
            account_id: Some(job.account_id()),
            payload: serde_json::to_string(&sealed).map_err(QueueError::Encode)?,
            idempotency_key,
            run_at_ms: None,
        })
    }
}

/// The answer to an enqueue: the job's id, and whether this call created it (`false`: the
/// idempotency key was already used, and `id` is that earlier job).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enqueued {
    pub id: Uuid,
    pub created: bool,
}

/// Jobs recorded in a transaction that still have to reach the transport once it commits.
#[derive(Debug, Default)]
#[must_use = "push the jobs once the transaction has committed"]
pub struct AfterCommit(Vec<(Message, i64)>);

impl AfterCommit {
    /// A job just recorded: Redis must be handed it (the database transport holds it as is).
    fn add(&mut self, transport: &Transport, job: NewJob) {
        if matches!(transport, Transport::Redis(_)) {
            let message = Message {
                id: job.id,
                kind: job.kind,
                payload: job.payload,
                attempts: 0,
                max_attempts: job.max_attempts,
            };
            self.0.push((message, job.run_at_ms));
        }
    }
}

/// One job handed to a worker, with what the transport needs to settle it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub job: ClaimedJob,
    /// The Redis stream entry carrying the job; `None` on the database transport.
    pub entry_id: Option<String>,
}

/// How an attempt ended, as the queue needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    Succeeded,
    /// Bad input or a guard's refusal: dead at once.
    Permanent(String),
    /// Infrastructure: retried with backoff until the attempts run out.
    Transient(String),
}

#[derive(Clone, Debug)]
enum Transport {
    Database,
    Redis(Box<RedisTransport>),
}

#[derive(Clone, Debug)]
pub struct Queue {
    store: Store,
    transport: Transport,
    pub(crate) settings: QueueSettings,
    policy: RetryPolicy,
    clock: Clock,
    /// Records pushes in the background (Redis transport).
    push_marks: Option<PushMarks>,
    /// Gathers concurrent single enqueues (PostgreSQL).
    enqueuer: Option<Enqueuer>,
}

type EnqueueCall = (NewJob, oneshot::Sender<Result<Recorded, String>>);

/// Gathers the single enqueues that arrive together (API requests on many connections)
/// into one INSERT and one Redis round trip: group commit, done by the service. Each caller
/// still gets its answer only once its row is committed. One statement for many rows is what
/// lets the API go past a database doing one commit per request.
#[derive(Clone, Debug)]
struct Enqueuer(mpsc::Sender<EnqueueCall>);

impl Enqueuer {
    const MAX_BATCH: usize = 256;

    /// `queue` must have no enqueuer of its own: it records and pushes the batches.
    fn spawn(queue: Queue) -> Self {
        let (sender, mut calls) = mpsc::channel::<EnqueueCall>(4 * Self::MAX_BATCH);
        tokio::spawn(async move {
            let mut batch: Vec<EnqueueCall> = Vec::with_capacity(Self::MAX_BATCH);
            while calls.recv_many(&mut batch, Self::MAX_BATCH).await > 0 {
                let (jobs, replies): (Vec<NewJob>, Vec<_>) = batch.drain(..).unzip();
                // Each job is another caller's: one's conflict is its own answer, the
                // others are recorded all the same.
                match queue.record_and_push(jobs).await {
                    Ok(recorded) => {
                        for (reply, answer) in replies.into_iter().zip(recorded) {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    Err(error) => {
                        let error = error.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        Self(sender)
    }

    async fn enqueue(&self, job: NewJob) -> Result<Recorded, QueueError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || QueueError::Record("the enqueuer has stopped".into());
        self.0.send((job, reply)).await.map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(QueueError::Record)
    }
}

/// Records in the ledger, in batches and off the producer's path, that Redis holds jobs.
///
/// An enqueue answers once its row is committed and its entry pushed; the mark that the
/// push happened only spares the reconciler a second push. Written inline it was a second
/// commit on every enqueue; here one statement marks every push of the last moment. A
/// mark lost (the process died, the channel was full) costs one duplicate push after the
/// reconciler's grace, and a duplicate delivery is dropped at claim time.
#[derive(Clone, Debug)]
struct PushMarks(mpsc::Sender<(Vec<Uuid>, i64)>);

impl PushMarks {
    const PENDING: usize = 4096;

    fn spawn(store: Store) -> Self {
        let (sender, mut receiver) = mpsc::channel::<(Vec<Uuid>, i64)>(Self::PENDING);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while receiver.recv_many(&mut batch, Self::PENDING).await > 0 {
                let now_ms = batch.iter().map(|(_, at)| *at).max().unwrap_or_default();
                let ids: Vec<Uuid> = batch.drain(..).flat_map(|(ids, _)| ids).collect();
                if let Err(error) = ledger::mark_pushed(&store, &ids, now_ms).await {
                    tracing::warn!(%error, jobs = ids.len(), "could not record pushed jobs; the reconciler will push them again");
                }
            }
        });
        Self(sender)
    }

    fn record(&self, ids: Vec<Uuid>, now_ms: i64) {
        if ids.is_empty() {
            return;
        }
        if self.0.try_send((ids, now_ms)).is_err() {
            tracing::debug!("push marks backed up; the reconciler will push those jobs again");
        }
    }
}

impl Queue {
    pub async fn connect(
        store: Store,
        settings: &QueueSettings,
        clock: Clock,
    ) -> Result<Self, QueueError> {
        let transport = match settings.backend {
            QueueBackend::Database => Transport::Database,
            QueueBackend::Redis => Transport::Redis(Box::new(
                RedisTransport::connect(
                    settings.redis_url.expose(),
                    &settings.namespace,
                    Duration::from_secs(settings.visibility_timeout_secs),
                )
                .await?,
            )),
        };
        let push_marks =
            matches!(transport, Transport::Redis(_)).then(|| PushMarks::spawn(store.clone()));
        let mut queue = Self {
            push_marks,
            enqueuer: None,
            store,
            transport,
            policy: RetryPolicy {
                max_attempts: settings.max_attempts.max(1),
                base: Duration::from_millis(settings.backoff_base_ms),
                cap: Duration::from_secs(settings.backoff_cap_secs),
            },
            settings: settings.clone(),
            clock,
        };
        // SQLite has one writer anyway and no round trips to save.
        if matches!(queue.store, Store::Postgres(_)) {
            queue.enqueuer = Some(Enqueuer::spawn(queue.clone()));
        }
        Ok(queue)
    }

    /// Records the job in the ledger (durably, before answering) and hands it to the
    /// transport. The same idempotency key twice gives the same job, enqueued once; the key
    /// of another job (another kind or payload) is [`QueueError::IdempotencyConflict`].
    pub async fn enqueue(&self, request: EnqueueRequest) -> Result<Enqueued, QueueError> {
        let new_job = self.new_job(request)?;
        let key = new_job.idempotency_key.clone();
        let recorded = match &self.enqueuer {
            Some(enqueuer) => enqueuer.enqueue(new_job).await?,
            None => self
                .record_and_push(vec![new_job])
                .await?
                .pop()
                .ok_or(QueueError::Record("an enqueue recorded nothing".into()))?,
        };
        answer(recorded, key.as_ref())
    }

    /// Records many jobs in one transaction, all or none, then hands them to the transport
    /// in one round trip: for bulk producers and benchmarks. A job whose key belongs to
    /// another job ([`QueueError::IdempotencyConflict`]) records none of the batch.
    pub async fn enqueue_batch(
        &self,
        requests: Vec<EnqueueRequest>,
    ) -> Result<Vec<Enqueued>, QueueError> {
        let jobs: Vec<NewJob> = requests
            .into_iter()
            .map(|request| self.new_job(request))
            .collect::<Result<_, _>>()?;
        let mut tx = self.store.begin().await?;
        let recorded = ledger::insert_many(&mut tx, &jobs).await?;
        let answers: Vec<Enqueued> = recorded
            .iter()
            .zip(&jobs)
            .map(|(recorded, job)| answer(*recorded, job.idempotency_key.as_ref()))
            .collect::<Result<_, _>>()
            .inspect_err(|_| tracing::debug!("a batch holds a conflicting key: recorded none"))?;
        tx.commit().await?;
        self.push_created(jobs, &recorded).await;
        Ok(answers)
    }

    /// Records many jobs in one transaction (one statement on PostgreSQL) and answers each
    /// on its own, in order: unlike [`Queue::enqueue_batch`], a job whose key belongs to
    /// another job is refused alone ([`QueueError::IdempotencyConflict`] in its place)
    /// while the others are recorded. The HTTP batch route answers per item this way.
    pub async fn enqueue_each(
        &self,
        requests: Vec<EnqueueRequest>,
    ) -> Result<Vec<Result<Enqueued, QueueError>>, QueueError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let jobs: Vec<NewJob> = requests
            .into_iter()
            .map(|request| self.new_job(request))
            .collect::<Result<_, _>>()?;
        let mut tx = self.store.begin().await?;
        // A taken key inserts nothing (ON CONFLICT DO NOTHING): committing the rest is safe.
        let recorded = ledger::insert_many(&mut tx, &jobs).await?;
        tx.commit().await?;
        let answers = recorded
            .iter()
            .zip(&jobs)
            .map(|(recorded, job)| answer(*recorded, job.idempotency_key.as_ref()))
            .collect();
        self.push_created(jobs, &recorded).await;
        Ok(answers)
    }

    /// Records `jobs` at once, each on its own ([`ledger::insert_many_now`]), then hands
    /// the new ones to the transport.
    async fn record_and_push(&self, jobs: Vec<NewJob>) -> Result<Vec<Recorded>, QueueError> {
        let recorded = ledger::insert_many_now(&self.store, &jobs).await?;
        self.push_created(jobs, &recorded).await;
        Ok(recorded)
    }

    /// Hands the jobs just created to the transport. Committed is accepted: a failed push
    /// is logged and left to the reconciler, not reported, so a producer does not enqueue
    /// again what is already recorded.
    async fn push_created(&self, jobs: Vec<NewJob>, recorded: &[Recorded]) {
        let mut pending = AfterCommit::default();
        for (job, recorded) in jobs.into_iter().zip(recorded) {
            if matches!(recorded, Recorded::Created(_)) {
                pending.add(&self.transport, job);
            }
        }
        if let Err(error) = self.push(pending).await {
            tracing::warn!(%error, "could not push enqueued jobs; the reconciler will");
        }
    }

    /// Runs a finished or dead job again now, keeping its history: the dashboard's and
    /// the CLI's retry, and a redelivery in tests. Its effects still apply at most once.
    pub async fn retry_now(&self, job_id: Uuid) -> Result<bool, QueueError> {
        let now_ms = self.clock.now_ms();
        let Some(job) =
            ledger::requeue(&self.store, job_id, now_ms, self.held_by_ledger(now_ms)).await?
        else {
            return Ok(false);
        };
        if let Transport::Redis(redis) = &self.transport {
            redis
                .push(&[(Message::of(&job, job.attempts), now_ms)], now_ms)
                .await?;
            self.mark_pushed(&[job.id], now_ms);
        }
        Ok(true)
    }

    /// Records the job in the caller's transaction: it exists only if that commits. Pass
    /// the returned [`AfterCommit`] to [`Queue::push`] after the commit.
    pub async fn enqueue_in(
        &self,
        tx: &mut Tx,
        request: EnqueueRequest,
    ) -> Result<(Enqueued, AfterCommit), QueueError> {
        let new_job = self.new_job(request)?;
        let recorded = ledger::insert(tx, &new_job).await?;
        let enqueued = answer(recorded, new_job.idempotency_key.as_ref())?;
        let mut after_commit = AfterCommit::default();
        if enqueued.created {
            after_commit.add(&self.transport, new_job);
        }
        Ok((enqueued, after_commit))
    }

    /// The ledger row of a request, as of now.
    fn new_job(&self, request: EnqueueRequest) -> Result<NewJob, QueueError> {
        if let (Some(IdempotencyKey::Caller(key)), None) =
            (&request.idempotency_key, request.account_id)
        {
            return Err(QueueError::KeyWithoutAccount(key.clone()));
        }
        let now_ms = self.clock.now_ms();
        Ok(NewJob {
            id: Uuid::now_v7(),
            kind: request.kind.to_string(),
            account_id: request.account_id,
            payload: request.payload,
            idempotency_key: request.idempotency_key,
            max_attempts: self.policy_for(request.kind).max_attempts as i32,
            run_at_ms: request.run_at_ms.unwrap_or(now_ms),
            created_at_ms: now_ms,
            pushed_at_ms: self.held_by_ledger(now_ms),
        })
    }

    /// Hands committed jobs to the transport (a no-op on the database transport, where the
    /// ledger row is the queue entry).
    ///
    /// Should the push fail, the job is still in the ledger, not marked pushed: the
    /// reconciler ([`Queue::reconcile`]) pushes it later.
    pub async fn push(&self, after_commit: AfterCommit) -> Result<(), QueueError> {
        match &self.transport {
            Transport::Database => Ok(()),
            Transport::Redis(redis) => {
                let now_ms = self.clock.now_ms();
                redis.push(&after_commit.0, now_ms).await?;
                let ids: Vec<Uuid> = after_commit
                    .0
                    .iter()
                    .map(|(message, _)| message.id)
                    .collect();
                self.mark_pushed(&ids, now_ms);
                Ok(())
            }
        }
    }

    /// Whether Redis lost the queue since the ledger last saw it: its epoch differs from the
    /// one recorded in the database, or it had none while the database had one. A system
    /// seen for the first time (no epoch anywhere) lost nothing.
    async fn redis_lost_the_queue(&self, redis: &RedisTransport) -> Result<bool, QueueError> {
        let namespace = &self.settings.namespace;
        let current = redis.epoch().await?;
        let recorded = ledger::queue_epoch(&self.store, namespace).await?;
        if recorded.as_deref() == Some(current.as_str()) {
            return Ok(false);
        }
        ledger::record_queue_epoch(&self.store, namespace, &current).await?;
        Ok(recorded.is_some())
    }

    /// Turns the rows producers wrote into `job_outbox` into jobs: each row into exactly one
    /// job (row and job written in one transaction), or, when its payload is invalid or its
    /// key holds another job, into a row marked with the reason. Returns how many rows it
    /// relayed.
    pub async fn relay_outbox(&self) -> Result<u64, QueueError> {
        let mut relayed = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let rows = outbox::pending(&mut tx, RELAY_CHUNK).await?;
            if rows.is_empty() {
                tx.commit().await?;
                return Ok(relayed);
            }
            let now = self.clock.now();
            let mut after_commit = AfterCommit::default();
            for row in &rows {
                let validated = lifecycle_jobs::validate_json(&row.kind, &row.payload)
                    .and_then(|job| job.check_requested_at(now).map(|()| job));
                // A row is relayed into one job, or marked with why it is not: an invalid
                // payload, or a key that holds another job (the insert recorded nothing).
                let refusal = match validated {
                    Ok(job) => {
                        // The producer's key is scoped to the job's account like any other
                        // producer's; without one, the row's own id keys the job, in the
                        // service's space, so relaying a row twice records one job.
                        let key = match &row.idempotency_key {
                            Some(key) => IdempotencyKey::Caller(key.clone()),
                            None => IdempotencyKey::internal(format!("outbox:{}", row.id)),
                        };
                        let request = EnqueueRequest {
                            kind: job.name,
                            account_id: Some(job.account_id),
                            payload: job.payload,
                            idempotency_key: Some(key),
                            run_at_ms: None,
                        };
                        match self.enqueue_in(&mut tx, request).await {
                            Ok((enqueued, pending)) => {
                                after_commit.0.extend(pending.0);
                                outbox::mark_relayed(&mut tx, row.id, Some(enqueued.id), None, now)
                                    .await?;
                                continue;
                            }
                            Err(conflict @ QueueError::IdempotencyConflict { .. }) => {
                                conflict.to_string()
                            }
                            Err(error) => return Err(error),
                        }
                    }
                    Err(refusal) => refusal.to_string(),
                };
                tracing::warn!(outbox_id = row.id, %refusal, "outbox row refused");
                outbox::mark_relayed(&mut tx, row.id, None, Some(&refusal), now).await?;
            }
            tx.commit().await?;
            // A failed push leaves the jobs to the reconciler: they are in the ledger.
            if let Err(error) = self.push(after_commit).await {
                tracing::warn!(%error, "could not push relayed outbox jobs; the reconciler will");
            }
            relayed += rows.len() as u64;
            if (rows.len() as i64) < RELAY_CHUNK {
                return Ok(relayed);
            }
        }
    }

    /// Publishes recorded events to the Redis stream, each once, in the order they are
    /// numbered. Returns how many it added.
    ///
    /// One publisher at a time (PostgreSQL: an advisory lock; SQLite has one writer); the
    /// others return at once, the holder publishing their events too. Each round numbers
    /// the newly visible events and commits the numbers, then hands every numbered,
    /// unmarked event to the stream under the entry id `0-<number>`, then marks them. A
    /// crash between the publish and the mark leaves numbered events whose entry ids the
    /// stream already has: the next publish skips them (Redis accepts only ids above its
    /// last), so nothing is added twice, and nothing is left out or put out of order.
    pub async fn publish_events(&self) -> Result<u64, QueueError> {
        let Transport::Redis(redis) = &self.transport else {
            return Ok(0);
        };
        // An idle publisher looks without taking the lock.
        let mut tx = self.store.begin_read().await?;
        let waiting = events::any_unpublished(&mut tx).await?;
        tx.commit().await?;
        if !waiting {
            return Ok(0);
        }
        let Some(lock) = events::lock_publisher(&self.store).await? else {
            return Ok(0);
        };
        let published = self.publish_numbered_events(redis).await;
        // Released whatever happened: a failed publish is taken up again next time.
        lock.release().await?;
        published
    }

    /// The rounds of [`Queue::publish_events`], under the publisher's lock.
    async fn publish_numbered_events(&self, redis: &RedisTransport) -> Result<u64, QueueError> {
        let mut published = 0;
        loop {
            // The numbers are committed before the publish: they fix the entry ids.
            let mut tx = self.store.begin().await?;
            events::assign_stream_seqs(&mut tx, RELAY_CHUNK).await?;
            tx.commit().await?;
            let mut tx = self.store.begin_read().await?;
            let rows = events::numbered_unpublished(&mut tx, RELAY_CHUNK).await?;
            tx.commit().await?;
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                return Ok(published);
            };
            let (first_seq, last_seq) = (first.stream_seq, last.stream_seq);
            let encoded: Vec<(i64, String)> = rows
                .iter()
                .map(|row| Ok((row.stream_seq, serde_json::to_string(&row.event)?)))
                .collect::<Result<_, serde_json::Error>>()
                .map_err(QueueError::Encode)?;
            let added = redis
                .publish(
                    &self.settings.events_stream,
                    self.settings.events_max_len,
                    &encoded,
                )
                .await?;
            if (added as usize) < rows.len() {
                tracing::warn!(
                    events = rows.len() - added as usize,
                    "events already on the stream (published before their mark was lost) were not added again"
                );
            }
            let mut tx = self.store.begin().await?;
            events::mark_published(&mut tx, first_seq, last_seq, self.clock.now()).await?;
            tx.commit().await?;
            published += added;
            if (rows.len() as i64) < RELAY_CHUNK {
                return Ok(published);
            }
        }
    }

    /// Deletes finished jobs older than the retention, in batches, until none is left or
    /// `budget` has passed. Returns how many.
    pub async fn prune(&self, budget: Duration) -> Result<u64, QueueError> {
        let started = std::time::Instant::now();
        let retention_ms = i64::from(self.settings.retention_days) * 24 * 3600 * 1000;
        let before_ms = self.clock.now_ms() - retention_ms;
        let mut pruned = 0;
        loop {
            let batch = ledger::prune_finished(&self.store, before_ms, PRUNE_CHUNK).await?;
            pruned += batch;
            if batch < PRUNE_CHUNK as u64 || started.elapsed() >= budget {
                return Ok(pruned);
            }
        }
    }

    /// Whether events go out on a Redis stream (else the `events` table is the feed).
    pub fn publishes_events(&self) -> bool {
        matches!(self.transport, Transport::Redis(_))
    }

    /// The retry policy of a job kind: the queue's, with what `queue.kinds` sets for it.
    pub fn policy_for(&self, kind: &str) -> RetryPolicy {
        let Some(own) = self.settings.kinds.get(kind) else {
            return self.policy;
        };
        RetryPolicy {
            max_attempts: own.max_attempts.unwrap_or(self.policy.max_attempts).max(1),
            base: own
                .backoff_base_ms
                .map_or(self.policy.base, Duration::from_millis),
            cap: own
                .backoff_cap_secs
                .map_or(self.policy.cap, Duration::from_secs),
        }
    }

    /// What the ledger records of a job's transport when it (re)enters the queue: the
    /// database transport holds it at once; Redis only once a push succeeds.
    fn held_by_ledger(&self, now_ms: i64) -> Option<i64> {
        match self.transport {
            Transport::Database => Some(now_ms),
            Transport::Redis(_) => None,
        }
    }

    /// Records a successful push, in the background ([`PushMarks`]: there is one whenever
    /// the transport is Redis, the only one that pushes).
    fn mark_pushed(&self, ids: &[Uuid], now_ms: i64) {
        if let Some(marks) = &self.push_marks {
            marks.record(ids.to_vec(), now_ms);
        }
    }

    /// Makes Redis hold every job the ledger says is queued, whatever happened to Redis:
    /// after a wipe or a restart without persistence, every queued job is pushed again; a
    /// job whose push after its commit failed is pushed once it is `grace` old; a job held
    /// by a worker that died, whose entry Redis lost, is queued again. Pushing a job twice
    /// is harmless: a delivery runs only if it claims the ledger row. Returns how many jobs
    /// it pushed. A no-op on the database transport, where the ledger row is the queue.
    pub async fn reconcile(&self, grace: Duration) -> Result<u64, QueueError> {
        let Transport::Redis(redis) = &self.transport else {
            return Ok(0);
        };
        if self.redis_lost_the_queue(redis).await? {
            let forgotten = ledger::forget_pushed(&self.store).await?;
            tracing::warn!(
                jobs = forgotten,
                "Redis lost the queue (restart without persistence, or flushed): pushing every queued job again"
            );
        }
        let now_ms = self.clock.now_ms();
        let stale_before = now_ms - (self.settings.visibility_timeout_secs as i64) * 1000;
        ledger::requeue_stale(
            &self.store,
            stale_before,
            self.settings.visibility_timeout_secs,
            now_ms,
            None,
        )
        .await?;
        let created_before = now_ms - grace.as_millis() as i64;
        let mut pushed = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let jobs = ledger::unpushed(&mut tx, created_before, RECONCILE_CHUNK).await?;
            if jobs.is_empty() {
                tx.commit().await?;
                return Ok(pushed);
            }
            let messages: Vec<(Message, i64)> = jobs
                .iter()
                .map(|unpushed| {
                    (
                        Message::of(&unpushed.job, unpushed.job.attempts),
                        unpushed.run_at_ms,
                    )
                })
                .collect();
            redis.push(&messages, now_ms).await?;
            let ids: Vec<Uuid> = jobs.iter().map(|unpushed| unpushed.job.id).collect();
            // Marked in the transaction that holds the rows (locked on PostgreSQL), so
            // another reconciler does not push them too.
            ledger::mark_pushed_in(&mut tx, &ids, now_ms).await?;
            tx.commit().await?;
            pushed += jobs.len() as u64;
            tracing::warn!(
                jobs = jobs.len(),
                "pushed queued jobs the transport did not hold"
            );
            if (jobs.len() as i64) < RECONCILE_CHUNK {
                return Ok(pushed);
            }
        }
    }

    /// A source of deliveries for one consumer.
    pub async fn reader(&self, consumer: String) -> Result<Reader, QueueError> {
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(1));
        let redis = match &self.transport {
            Transport::Database => None,
            Transport::Redis(redis) => Some(redis.reader(consumer.clone(), poll).await?),
        };
        Ok(Reader {
            queue: self.clone(),
            consumer,
            redis,
            last_requeue: None,
        })
    }

    /// Records how a batch of attempts ended (one database transaction, one Redis round
    /// trip), and finishes, retries or buries each job.
    pub async fn settle_batch(
        &self,
        attempts: &[(Delivery, AttemptResult)],
    ) -> Result<(), QueueError> {
        if attempts.is_empty() {
            return Ok(());
        }
        let now_ms = self.clock.now_ms();
        let mut settlements = Vec::with_capacity(attempts.len());
        let mut acks = Vec::new();
        let mut retries = Vec::new();
        for (delivery, result) in attempts {
            let job = &delivery.job;
            let attempt = job.attempts.max(1);
            let settlement = match result {
                AttemptResult::Succeeded => Settlement::Done,
                AttemptResult::Permanent(error) => Settlement::Failed {
                    error: error.clone(),
                    permanent: true,
                    retry_at_ms: None,
                },
                AttemptResult::Transient(error) => {
                    // The policy configured now holds, not the one of the day it was queued.
                    let policy = self.policy_for(&job.kind);
                    Settlement::Failed {
                        error: error.clone(),
                        permanent: false,
                        retry_at_ms: policy
                            .delay_after(attempt as u32)
                            .map(|delay| now_ms + delay.as_millis() as i64),
                    }
                }
            };
            if let Some(entry) = &delivery.entry_id {
                match &settlement {
                    Settlement::Failed {
                        retry_at_ms: Some(run_at_ms),
                        ..
                    } => retries.push((entry.clone(), Message::of(job, attempt), *run_at_ms)),
                    _ => acks.push(entry.clone()),
                }
            }
            settlements.push((job.id, attempt, settlement));
        }
        ledger::settle_many(
            &self.store,
            &settlements,
            now_ms,
            self.held_by_ledger(now_ms),
        )
        .await?;
        if let Transport::Redis(redis) = &self.transport {
            redis.settle(&acks, &retries).await?;
            let retried: Vec<Uuid> = retries.iter().map(|(_, message, _)| message.id).collect();
            self.mark_pushed(&retried, now_ms);
        }
        Ok(())
    }

    /// Puts back what any worker has held past the visibility timeout (it hung, or died
    /// without a heartbeat row to tell), recording why each attempt ended.
    pub async fn requeue_stale(&self) -> Result<u64, QueueError> {
        let now_ms = self.clock.now_ms();
        let stale_before = now_ms - (self.settings.visibility_timeout_secs as i64) * 1000;
        Ok(ledger::requeue_stale(
            &self.store,
            stale_before,
            self.settings.visibility_timeout_secs,
            now_ms,
            self.held_by_ledger(now_ms),
        )
        .await?)
    }
}

/// What the caller of an enqueue learns of a recorded job: the job, created or found under
/// its key, or the conflict of a key that belongs to another job.
fn answer(recorded: Recorded, key: Option<&IdempotencyKey>) -> Result<Enqueued, QueueError> {
    match recorded {
        Recorded::Created(id) => Ok(Enqueued { id, created: true }),
        Recorded::Existing(id) => Ok(Enqueued { id, created: false }),
        Recorded::Conflict(job_id) => Err(QueueError::IdempotencyConflict {
            key: key.map(|key| key.to_string()).unwrap_or_default(),
            job_id,
        }),
    }
}

/// Runs `operation` up to 5 times, 100 ms apart and doubling, while it fails: a database
/// connection cut (a restart, a failover) costs one failed attempt before the pool opens a
/// new one.
pub(crate) async fn with_retries<T, F, Fut>(what: &str, mut operation: F) -> Result<T, QueueError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, QueueError>>,
{
    let mut delay = Duration::from_millis(100);
    let mut tries = 1;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(error) if tries < 5 => {
                tracing::warn!(%error, tries, "{what} failed; trying again");
                tokio::time::sleep(delay).await;
                delay *= 2;
                tries += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Reads batches of deliveries for one consumer.
pub struct Reader {
    queue: Queue,
    consumer: String,
    redis: Option<RedisReader>,
    /// When this reader last put back jobs of dead workers (database transport) or
    /// reconciled the ledger with Redis.
    last_requeue: Option<std::time::Instant>,
}

impl Reader {
    /// The next batch of at most `max` deliveries; empty when none came within the poll
    /// interval.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let now_ms = self.queue.clock.now_ms();
        match &mut self.redis {
            None => {
                let every =
                    Duration::from_secs(self.queue.settings.visibility_timeout_secs.max(4) / 4);
                if self.last_requeue.is_none_or(|at| at.elapsed() >= every) {
                    self.last_requeue = Some(std::time::Instant::now());
                    let requeued = self.queue.requeue_stale().await?;
                    if requeued > 0 {
                        tracing::warn!(
                            jobs = requeued,
                            "took over jobs a dead worker left claimed"
                        );
                    }
                }
                let claimed =
                    ledger::claim_due(&self.queue.store, &self.consumer, max as i64, now_ms)
                        .await?;
                if claimed.is_empty() {
                    tokio::time::sleep(Duration::from_millis(self.queue.settings.poll_interval_ms))
                        .await;
                }
                Ok(claimed
                    .into_iter()
                    .map(|job| Delivery {
                        job,
                        entry_id: None,
                    })
                    .collect())
            }
            Some(reader) => {
                let every = Duration::from_secs(self.queue.settings.reconcile_interval_secs.max(1));
                if self.last_requeue.is_none_or(|at| at.elapsed() >= every) {
                    self.last_requeue = Some(std::time::Instant::now());
                    // A failed reconciliation is tried again next time; reading goes on.
                    if let Err(error) = self.queue.reconcile(every).await {
                        tracing::warn!(%error, "could not reconcile the ledger with Redis");
                    }
                }
                let entries = reader.read(max, now_ms).await?;
                if entries.is_empty() {
                    return Ok(Vec::new());
                }
                // The ledger decides: a delivery runs only if it claims its row, so a job
                // pushed twice, or finished meanwhile, never runs twice at once.
                let ids: Vec<Uuid> = entries.iter().map(|entry| entry.message.id).collect();
                // The read may have waited: the claim is stamped with the time it starts.
                let now_ms = self.queue.clock.now_ms();
                // Entries read are pending for this consumer: were the claim to fail for
                // good they would wait out the visibility timeout, so a passing database
                // failure is ridden out here, and a lasting one puts them back.
                let (store, consumer) = (&self.queue.store, &self.consumer);
                let claimed = match with_retries("claim delivered jobs", || async {
                    Ok(ledger::claim_delivered(store, consumer, &ids, now_ms).await?)
                })
                .await
                {
                    Ok(claimed) => claimed,
                    Err(error) => {
                        if let Transport::Redis(redis) = &self.queue.transport {
                            redis.put_back(&entries).await?;
                        }
                        return Err(error);
                    }
                };
                let mut claimed: std::collections::HashMap<Uuid, ClaimedJob> =
                    claimed.into_iter().map(|job| (job.id, job)).collect();
                let mut deliveries = Vec::with_capacity(claimed.len());
                let mut dropped = Vec::new();
                for entry in entries {
                    match claimed.remove(&entry.message.id) {
                        Some(job) => deliveries.push(Delivery {
                            job,
                            entry_id: Some(entry.entry_id),
                        }),
                        None => dropped.push(entry.entry_id),
                    }
                }
                if !dropped.is_empty() {
                    tracing::debug!(
                        entries = dropped.len(),
                        "dropped deliveries of jobs already running or finished"
                    );
                    if let Transport::Redis(redis) = &self.queue.transport {
                        redis.settle(&dropped, &[]).await?;
                    }
                }
                Ok(deliveries)
            }
        }
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }
}
