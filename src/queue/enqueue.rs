//! Enqueueing: a producer's request becomes a ledger row, committed before the answer,
//! then is handed to the transport. Single enqueues arriving together are gathered into one
//! statement ([`Enqueuer`], group commit); the marks that Redis holds a job are written in
//! the background ([`PushMarks`]) so a push costs no second commit.

use lifecycle_jobs::Job;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::redis::Message;
use super::transport::Transport;
use super::{IdempotencyKey, Queue, QueueError};
use crate::metrics::METRICS;
use crate::store::ledger::{self, NewJob, Recorded};
use crate::store::{Dialect, Store, Tx};

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
pub struct AfterCommit(pub(super) Vec<(Message, i64)>);

impl AfterCommit {
    /// A job just recorded: Redis must be handed it (the database transport holds it as is).
    pub(super) fn add(&mut self, transport: &Transport, job: NewJob) {
        if transport.pushes() {
            let message = Message {
                id: job.id,
                kind: job.kind,
                payload: job.payload,
                attempts: 0,
                max_attempts: job.max_attempts,
                recorded_under: None,
            };
            self.0.push((message, job.run_at_ms));
        }
    }
}

type EnqueueCall = (NewJob, oneshot::Sender<Result<Recorded, String>>);

/// Gathers the single enqueues that arrive together (API requests on many connections)
/// into one INSERT and one Redis round trip: group commit, done by the service. Each caller
/// still gets its answer only once its row is committed. One statement for many rows is what
/// lets the API go past a database doing one commit per request.
#[derive(Clone, Debug)]
pub(super) struct Enqueuer(mpsc::Sender<EnqueueCall>);

impl Enqueuer {
    const MAX_BATCH: usize = 256;

    /// `queue` must have no enqueuer of its own: it records and pushes the batches.
    pub(super) fn spawn(queue: Queue) -> Self {
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
pub(super) struct PushMarks(mpsc::Sender<(Vec<Uuid>, i64)>);

impl PushMarks {
    const PENDING: usize = 4096;

    pub(super) fn spawn(store: Store) -> Self {
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
        let jobs = self.new_jobs(requests)?;
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
        let jobs = self.new_jobs(requests)?;
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
                METRICS.enqueued(&job.kind);
                pending.add(&self.transport, job);
            }
        }
        if let Err(error) = self.push(pending).await {
            tracing::warn!(%error, "could not push enqueued jobs; the reconciler will");
        }
    }

    /// Runs a finished or dead job again now, keeping its history: a redelivery in tests
    /// (operators retry through `Queue::retry_jobs`, which records who did). Its effects
    /// still apply at most once.
    pub async fn retry_now(&self, job_id: Uuid) -> Result<bool, QueueError> {
        let now_ms = self.clock.now_ms();
        let Some(job) = ledger::requeue(
            &self.store,
            job_id,
            now_ms,
            self.transport.held_by_ledger(now_ms),
        )
        .await?
        else {
            return Ok(false);
        };
        if self.transport.pushes() {
            self.transport
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
            // Counted when recorded: the caller's transaction commits it or fails the job.
            METRICS.enqueued(&new_job.kind);
            after_commit.add(&self.transport, new_job);
        }
        Ok((enqueued, after_commit))
    }

    /// Records `requests` in the caller's transaction, with one statement on PostgreSQL
    /// (a handler's follow-up jobs: a sweep's batch records hundreds of emails at once).
    /// Each is [`Queue::enqueue_in`]'s: a key already holding the same job is that job (a
    /// rerun records nothing twice), a key holding another job is a conflict, refused.
    ///
    /// On PostgreSQL with Redis the new jobs are pushed now, before the transaction
    /// commits, and their rows inserted already marked pushed: one write per row instead of
    /// an insert and a mark (see [`ledger::hold_recording`] for why a delivery read before
    /// the commit still runs the job). Otherwise, returns what to hand the transport once
    /// the transaction commits.
    pub async fn enqueue_all_in(
        &self,
        tx: &mut Tx,
        requests: Vec<EnqueueRequest>,
    ) -> Result<AfterCommit, QueueError> {
        let mut after_commit = AfterCommit::default();
        if requests.is_empty() {
            return Ok(after_commit);
        }
        let mut jobs = self.new_jobs(requests)?;
        let before_commit = self.transport.pushes() && tx.dialect() == Dialect::Postgres;
        if before_commit {
            for job in &mut jobs {
                job.pushed_at_ms = Some(job.created_at_ms);
            }
        }
        let recorded = ledger::insert_many(tx, &jobs).await?;
        for (recorded, job) in recorded.into_iter().zip(jobs) {
            if answer(recorded, job.idempotency_key.as_ref())?.created {
                METRICS.enqueued(&job.kind);
                after_commit.add(&self.transport, job);
            }
        }
        if before_commit {
            self.push_before_commit(tx, after_commit).await?;
            return Ok(AfterCommit::default());
        }
        Ok(after_commit)
    }

    /// Pushes jobs `tx` recorded marked pushed, under its recording lock. A push that fails
    /// takes the marks back in `tx`, for the reconciler: the transaction still commits.
    async fn push_before_commit(
        &self,
        tx: &mut Tx,
        mut pending: AfterCommit,
    ) -> Result<(), QueueError> {
        if pending.0.is_empty() {
            return Ok(());
        }
        let recorded_under = ledger::hold_recording(tx).await?;
        for (message, _) in &mut pending.0 {
            message.recorded_under = recorded_under;
        }
        if let Err(error) = self.transport.push(&pending.0, self.clock.now_ms()).await {
            tracing::warn!(%error, "could not push recorded jobs; the reconciler will");
            let ids: Vec<Uuid> = pending.0.iter().map(|(message, _)| message.id).collect();
            ledger::mark_pushed_in(tx, &ids, None).await?;
        }
        Ok(())
    }

    /// The ledger rows of `requests`, all or none: one refused refuses the batch.
    fn new_jobs(&self, requests: Vec<EnqueueRequest>) -> Result<Vec<NewJob>, QueueError> {
        requests
            .into_iter()
            .map(|request| self.new_job(request))
            .collect()
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
            pushed_at_ms: self.transport.held_by_ledger(now_ms),
        })
    }

    /// Hands committed jobs to the transport (a no-op on the database transport, where the
    /// ledger row is the queue entry).
    ///
    /// Should the push fail, the job is still in the ledger, not marked pushed: the
    /// reconciler ([`Queue::reconcile`]) pushes it later.
    pub async fn push(&self, after_commit: AfterCommit) -> Result<(), QueueError> {
        // Empty on the database transport: nothing to push, nothing to mark.
        if after_commit.0.is_empty() {
            return Ok(());
        }
        let now_ms = self.clock.now_ms();
        self.transport.push(&after_commit.0, now_ms).await?;
        let ids: Vec<Uuid> = after_commit
            .0
            .iter()
            .map(|(message, _)| message.id)
            .collect();
        self.mark_pushed(&ids, now_ms);
        Ok(())
    }

    /// Records a successful push, in the background ([`PushMarks`]: there is one whenever
    /// the transport is Redis, the only one that pushes).
    pub(super) fn mark_pushed(&self, ids: &[Uuid], now_ms: i64) {
        if let Some(marks) = &self.push_marks {
            marks.record(ids.to_vec(), now_ms);
        }
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
