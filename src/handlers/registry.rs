//! Where a job kind's name meets its handler, and the one place the handlers meet the
//! queue: [`run`], generated from `lifecycle_jobs::for_each_job!`, decodes a payload and runs
//! its kind's [`Handle`] impl; [`commit`] writes a job transaction's mark, event and
//! follow-up jobs and hands those jobs to the transport once it has committed.

use chrono::{DateTime, Utc};
use lifecycle_jobs::{Job, decode};
use uuid::Uuid;

use super::job_tx::{JobContext, JobTx, JobTxParts};
use super::{JobError, Outcome};
use crate::clock::Clock;
use crate::config::Settings;
use crate::mail::Mailer;
use crate::queue::{EnqueueRequest, IdempotencyKey, Queue, QueueError};
use crate::store::events::{self, NewEvent};
use crate::store::{Store, audit, ledger};

/// What the registry runs a job with: the whole service, of which a handler sees only the
/// narrow [`JobContext`] (and SendEmail, which talks to the world, the store and mailer).
pub struct Runtime<'a> {
    pub store: &'a Store,
    pub queue: &'a Queue,
    pub clock: &'a Clock,
    pub mailer: &'a Mailer,
    pub settings: &'a Settings,
    pub job_id: Uuid,
    /// When the service recorded the job: see [`JobContext::enqueued_at`].
    pub enqueued_at: Option<DateTime<Utc>>,
}

impl<'a> Runtime<'a> {
    pub fn context(&self) -> JobContext<'a> {
        JobContext {
            clock: self.clock,
            settings: self.settings,
            job_id: self.job_id,
            enqueued_at: self.enqueued_at,
        }
    }
}

/// The worker's side of a job kind, implemented by its payload type in the kind's file:
/// what the registry's [`run`] calls. Most kinds get it from [`Apply`]; a kind that must not
/// run in one job transaction implements it itself: SendEmail talks SMTP between short
/// transactions, Noop opens none (the benchmarks measure the queue with it), and the sweeps
/// run in batches of their own.
pub trait Handle: Job + Sync {
    /// The account the job belongs to and the user it is about, when the payload names one:
    /// the subject of the job's event and span.
    fn subject(&self) -> (i64, Option<i64>);

    /// Runs the job to its outcome.
    fn run(&self, rt: &Runtime<'_>) -> impl Future<Output = Result<Outcome, JobError>> + Send;
}

/// A kind whose effects are applied in one job transaction: load, check the guards, write,
/// and record in `tx` the jobs that follow; an error rolls everything back. Its [`Handle`]
/// runs `apply` in a job transaction committed with the mark that it was applied (a
/// redelivery then changes nothing).
pub trait Apply: Job + Sync {
    /// As [`Handle::subject`].
    fn subject(&self) -> (i64, Option<i64>);

    fn apply(
        &self,
        tx: &mut JobTx,
        ctx: &JobContext<'_>,
    ) -> impl Future<Output = Result<Outcome, JobError>> + Send;
}

impl<T: Apply> Handle for T {
    fn subject(&self) -> (i64, Option<i64>) {
        Apply::subject(self)
    }

    async fn run(&self, rt: &Runtime<'_>) -> Result<Outcome, JobError> {
        let subject = Apply::subject(self);
        let Some(mut tx) = JobTx::begin(rt.store, rt.job_id, subject).await? else {
            return Ok(Outcome::AlreadyApplied);
        };
        let outcome = self.apply(&mut tx, &rt.context()).await?;
        commit(rt, tx, Self::NAME).await?;
        Ok(outcome)
    }
}

/// Commits a job transaction: its rows, the mark that job `kind` was applied, the event
/// that tells subscribers when it changed anything (it wrote audit rows), and its follow-up
/// jobs; then hands those jobs to the transport.
pub async fn commit(rt: &Runtime<'_>, tx: JobTx, kind: &str) -> Result<(), JobError> {
    let JobTxParts {
        mut tx,
        job_id,
        account_id,
        user_id,
        follow_ups,
        batch,
    } = tx.into_parts();
    let requests = follow_ups
        .into_iter()
        .map(|follow_up| EnqueueRequest {
            kind: follow_up.kind,
            account_id: Some(follow_up.account_id),
            payload: follow_up.payload,
            idempotency_key: Some(IdempotencyKey::internal(follow_up.key)),
            run_at_ms: follow_up.run_at.map(|at| at.timestamp_millis()),
        })
        .collect();
    let pushes = rt
        .queue
        .enqueue_all_in(&mut tx, requests)
        .await
        .map_err(queue_error)?;
    let now = rt.clock.now();
    // A job that commits once has one event, about its subject. A batch of a job that
    // commits in many transactions (a sweep) has one per account its rows changed, each of
    // that account's rows only, numbered by its first row (`events (job_id, batch)`).
    let events: Vec<EventOf> = match batch {
        Some(mut changes) => {
            changes.sort_unstable_by_key(|change| change.audited.id);
            let mut by_account: Vec<(i64, i64, Vec<Change<'_>>)> = Vec::new();
            let mut index: std::collections::HashMap<i64, usize> = Default::default();
            for change in &changes {
                let audited = change.audited;
                let listed = (change.entity, audited.entity_id, change.action);
                match index.get(&audited.account_id) {
                    Some(at) => by_account[*at].2.push(listed),
                    None => {
                        index.insert(audited.account_id, by_account.len());
                        by_account.push((audited.account_id, audited.id, vec![listed]));
                    }
                }
            }
            by_account
                .into_iter()
                .map(|(account_id, batch, rows)| EventOf::new(account_id, None, batch, rows))
                .collect()
        }
        None => {
            ledger::mark_applied(&mut tx, job_id, kind, now).await?;
            let rows = audit::for_job(&mut tx, job_id).await?;
            // A job that changed nothing has no event.
            (!rows.is_empty())
                .then(|| {
                    let listed = rows
                        .iter()
                        .map(|row| (row.entity.as_str(), row.entity_id, row.action.as_str()));
                    EventOf::new(account_id, user_id, 0, listed)
                })
                .into_iter()
                .collect()
        }
    };
    let new_events: Vec<(NewEvent<'_>, i64)> = events
        .iter()
        .map(|event| {
            let new = NewEvent {
                kind,
                account_id: Some(event.account_id).filter(|id| *id > 0),
                user_id: event.user_id.filter(|id| *id > 0),
                job_id,
                at: now,
                changes: &event.changes,
                // Only Redis has a stream to publish to; otherwise the table is the feed.
                published_at: (!rt.queue.publishes_events()).then_some(now),
            };
            (new, event.batch)
        })
        .collect();
    events::record_many_in_batch(&mut tx, &new_events).await?;
    tx.commit().await?;
    rt.queue.push(pushes).await.map_err(queue_error)?;
    Ok(())
}

/// The event of a job transaction about one account: what its audit rows changed (a JSON
/// array), numbered `batch`.
struct EventOf {
    account_id: i64,
    user_id: Option<i64>,
    batch: i64,
    changes: String,
}

/// One change an event lists: the entity, its id, the action.
type Change<'a> = (&'a str, i64, &'a str);

impl EventOf {
    /// The event of the changes `rows`, in their order (the audit log's).
    fn new<'a>(
        account_id: i64,
        user_id: Option<i64>,
        batch: i64,
        rows: impl IntoIterator<Item = Change<'a>>,
    ) -> Self {
        let changes: Vec<serde_json::Value> = rows
            .into_iter()
            .map(|(entity, entity_id, action)| {
                serde_json::json!({
                    "entity": entity,
                    "entity_id": entity_id,
                    "action": action,
                })
            })
            .collect();
        EventOf {
            account_id,
            user_id,
            batch,
            changes: serde_json::Value::Array(changes).to_string(),
        }
    }
}

fn queue_error(error: QueueError) -> JobError {
    JobError::Queue(error.to_string())
}

/// Decodes a payload of kind `J`, names its subject in the job's span and runs it.
async fn handle<J: Handle>(rt: &Runtime<'_>, payload: &str) -> Result<Outcome, JobError> {
    let job: J = decode(payload)?;
    let (account_id, user_id) = job.subject();
    tracing::Span::current().record("account_id", account_id);
    if let Some(user_id) = user_id {
        tracing::Span::current().record("user_id", user_id);
    }
    job.run(rt).await
}

macro_rules! dispatch {
    ($($kind:ident),* $(,)?) => {
        /// Decodes the payload of a job of kind `kind` and runs its handler. Generated from
        /// `for_each_job!`: a kind without a [`Handle`] impl does not compile.
        pub async fn run(rt: &Runtime<'_>, kind: &str, payload: &str) -> Result<Outcome, JobError> {
            match kind {
                $(<lifecycle_jobs::$kind as Job>::NAME => {
                    handle::<lifecycle_jobs::$kind>(rt, payload).await
                })*
                other => Err(JobError::UnknownKind(other.to_string())),
            }
        }
    };
}

lifecycle_jobs::for_each_job!(dispatch);
