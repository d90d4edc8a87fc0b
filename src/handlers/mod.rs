//! One file per job kind: load, check the guards, apply the effects in one transaction.
//! Each kind's payload type implements [`Handle`] in its file; [`run`], generated from
//! `lifecycle_jobs::for_each_job!`, is the one place a job kind's name meets its handler.

pub mod activate_salesperson;
pub mod confirm_user;
pub mod create_user;
pub mod deactivate_salesperson;
pub mod deactivate_user;
pub mod noop;
pub mod outbox;
pub mod purchase_made;
pub mod reactivate_user;
pub mod reassign_records;
pub mod record_activity;
pub mod record_login;
pub mod release_license;
pub mod send_email;
pub mod unlock_user;

use chrono::{DateTime, Utc};
use lifecycle_jobs::{Actor, InvalidPayload, Job, decode};
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::confirmation::LinkRefusal;
use crate::domain::guards::GuardRefusal;
use crate::domain::lockout::UnlockRefusal;
use crate::domain::seats::NoFreeLicense;
use crate::domain::user::Person;
use crate::mail::{MailError, Mailer};
use crate::queue::{AfterCommit, AttemptResult, Queue, QueueError};
use crate::store::accounts::AccountRow;
use crate::store::audit::AuditStamp;
use crate::store::events::{self, NewEvent};
use crate::store::{Store, StoreError, Tx, accounts, audit, ledger, users};
use std::sync::atomic::{AtomicI64, Ordering};

/// Why a job failed. Bad input and refusals are permanent: retrying cannot help. The store
/// and the queue failing is transient: the job runs again later.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Refused(#[from] GuardRefusal),
    #[error(transparent)]
    InvalidPayload(#[from] InvalidPayload),
    #[error(transparent)]
    NoFreeLicense(#[from] NoFreeLicense),
    #[error(transparent)]
    ConfirmationLink(#[from] LinkRefusal),
    #[error(transparent)]
    Unlock(#[from] UnlockRefusal),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Precondition(String),
    #[error("unknown job kind {0:?}")]
    UnknownKind(String),
    #[error("{0}")]
    NotYetDue(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl JobError {
    pub fn is_permanent(&self) -> bool {
        match self {
            JobError::Mail(error) => error.is_permanent(),
            JobError::Refused(_)
            | JobError::NoFreeLicense(_)
            | JobError::ConfirmationLink(_)
            | JobError::Unlock(_)
            | JobError::InvalidPayload(_)
            | JobError::NotFound(_)
            | JobError::Precondition(_)
            | JobError::UnknownKind(_) => true,
            JobError::NotYetDue(_) | JobError::Store(_) | JobError::Queue(_) => false,
        }
    }

    pub fn to_attempt_result(&self) -> AttemptResult {
        if self.is_permanent() {
            AttemptResult::Permanent(self.to_string())
        } else {
            AttemptResult::Transient(self.to_string())
        }
    }
}

/// How a job ended when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its effects were applied now.
    Applied,
    /// A replay: the effects of this job id were applied before; nothing changed.
    AlreadyApplied,
    /// Nothing to do, and why.
    NothingToDo(String),
}

/// What a handler runs with.
pub struct JobContext<'a> {
    pub store: &'a Store,
    pub queue: &'a Queue,
    pub clock: &'a Clock,
    pub mailer: &'a Mailer,
    pub settings: &'a Settings,
    pub job_id: Uuid,
    /// When the service recorded the job (the ledger's `created_at_ms`): what a job billed
    /// by the cycle counts from, however late it runs (a backlog, a retry). `None` for an
    /// attempt run outside the queue; then it counts from now.
    pub enqueued_at: Option<DateTime<Utc>>,
    /// The account and user the job is about, as far as known (0: not known): the subject
    /// of the job's event and span.
    pub subject: Subject,
}

/// Whom a job is about: its account and, when there is one, its user.
#[derive(Debug, Default)]
pub struct Subject {
    account_id: AtomicI64,
    user_id: AtomicI64,
}

impl Subject {
    /// Records the account (and the user) a job is about, in the job's span too.
    pub fn note(&self, account_id: i64, user_id: Option<i64>) {
        self.account_id.store(account_id, Ordering::Relaxed);
        tracing::Span::current().record("account_id", account_id);
        if let Some(user_id) = user_id {
            self.note_user(user_id);
        }
    }

    /// Records the user a job turned out to be about (a user it created, a buyer it found).
    pub fn note_user(&self, user_id: i64) {
        self.user_id.store(user_id, Ordering::Relaxed);
        tracing::Span::current().record("user_id", user_id);
    }

    fn account_id(&self) -> Option<i64> {
        Some(self.account_id.load(Ordering::Relaxed)).filter(|id| *id > 0)
    }

    fn user_id(&self) -> Option<i64> {
        Some(self.user_id.load(Ordering::Relaxed)).filter(|id| *id > 0)
    }
}

impl JobContext<'_> {
    /// This job's write transaction, or `None` when its effects were applied before (a
    /// redelivery): then it changes nothing.
    pub async fn begin_once(&self) -> Result<Option<Tx>, JobError> {
        let mut tx = self.store.begin().await?;
        if ledger::already_applied(&mut tx, self.job_id).await? {
            return Ok(None);
        }
        Ok(Some(tx))
    }

    /// Commits the job's effects together with the mark that they were applied and, when it
    /// changed anything (it wrote audit rows), the event that tells subscribers; then hands
    /// the jobs recorded in the transaction to the transport.
    pub async fn commit_applied(
        &self,
        mut tx: Tx,
        kind: &str,
        after_commit: AfterCommit,
    ) -> Result<(), JobError> {
        let now = self.clock.now();
        ledger::mark_applied(&mut tx, self.job_id, kind, now).await?;
        let changes: Vec<serde_json::Value> = audit::for_job(&mut tx, self.job_id)
            .await?
            .into_iter()
            .map(|row| {
                serde_json::json!({
                    "entity": row.entity,
                    "entity_id": row.entity_id,
                    "action": row.action,
                })
            })
            .collect();
        if !changes.is_empty() {
            events::record(
                &mut tx,
                &NewEvent {
                    kind,
                    account_id: self.subject.account_id(),
                    user_id: self.subject.user_id(),
                    job_id: self.job_id,
                    at: now,
                    changes: &serde_json::Value::Array(changes).to_string(),
                    // Only Redis has a stream to publish to; otherwise the table is the feed.
                    published_at: (!self.queue.publishes_events()).then_some(now),
                },
            )
            .await?;
        }
        tx.commit().await?;
        self.queue.push(after_commit).await?;
        Ok(())
    }

    /// When the service recorded this job, or now when that is not known.
    pub fn enqueued_at_or_now(&self) -> DateTime<Utc> {
        self.enqueued_at.unwrap_or_else(|| self.clock.now())
    }

    /// The stamp of this job's audit rows.
    pub fn audit_stamp(&self, account_id: i64, actor: impl ToString) -> AuditStamp {
        AuditStamp {
            account_id,
            actor: actor.to_string(),
            job_id: self.job_id,
            at: self.clock.now(),
        }
    }
}

/// The account of a job, or not found.
pub(crate) async fn load_account(tx: &mut Tx, account_id: i64) -> Result<AccountRow, JobError> {
    accounts::find(tx, account_id)
        .await?
        .ok_or_else(|| JobError::NotFound(format!("account {account_id} does not exist")))
}

/// The acting user (`None` for the system), or not found.
pub(crate) async fn load_actor(tx: &mut Tx, actor: Actor) -> Result<Option<Person>, JobError> {
    match actor.user_id() {
        None => Ok(None),
        Some(actor_id) => Ok(Some(users::find_person(tx, actor_id).await?.ok_or_else(
            || JobError::NotFound(format!("actor user {actor_id} does not exist")),
        )?)),
    }
}

/// A user of the account, or not found (another tenant's user does not exist here).
pub(crate) async fn load_user(
    tx: &mut Tx,
    account_id: i64,
    user_id: i64,
) -> Result<users::UserRow, JobError> {
    users::find_in_account(tx, account_id, user_id)
        .await?
        .ok_or_else(|| {
            JobError::NotFound(format!(
                "user {user_id} does not exist in account {account_id}"
            ))
        })
}

/// The account of a job, its target user and its actor, loaded and checked to exist in
/// that account (a user of another tenant is reported as not existing).
pub(crate) struct Parties {
    pub account: AccountRow,
    pub target: Person,
    pub actor: Option<Person>,
}

pub(crate) async fn load_parties(
    tx: &mut Tx,
    account_id: i64,
    user_id: i64,
    actor: Actor,
) -> Result<Parties, JobError> {
    let account = load_account(tx, account_id).await?;
    let target = users::find_person(tx, user_id)
        .await?
        .filter(|user| user.account_id == account_id)
        .ok_or_else(|| {
            JobError::NotFound(format!(
                "user {user_id} does not exist in account {account_id}"
            ))
        })?;
    let actor = load_actor(tx, actor).await?;
    Ok(Parties {
        account,
        target,
        actor,
    })
}

/// A user records are to be given to: must exist, be active and be of the account (G5).
pub(crate) async fn load_assignee(
    tx: &mut Tx,
    account_id: i64,
    user_id: i64,
) -> Result<Person, JobError> {
    let assignee = users::find_person(tx, user_id)
        .await?
        .ok_or_else(|| JobError::NotFound(format!("user {user_id} does not exist")))?;
    crate::domain::guards::assignable(account_id, &assignee)?;
    Ok(assignee)
}

/// The worker's side of a job kind, implemented by its payload type in the kind's file.
pub trait Handle: Job {
    /// The account the job belongs to and the user it is about, when the payload names one:
    /// noted as the job's subject (its event, its span) before it runs.
    fn subject(&self) -> (i64, Option<i64>);

    /// Runs the job: load, check the guards, apply the effects.
    fn run(&self, ctx: &JobContext<'_>) -> impl Future<Output = Result<Outcome, JobError>> + Send;
}

/// Decodes a payload of kind `J`, notes its subject and runs it.
async fn handle<J: Handle>(ctx: &JobContext<'_>, payload: &str) -> Result<Outcome, JobError> {
    let job: J = decode(payload)?;
    let (account_id, user_id) = job.subject();
    ctx.subject.note(account_id, user_id);
    job.run(ctx).await
}

macro_rules! dispatch {
    ($($kind:ident),* $(,)?) => {
        /// Decodes the payload of a job of kind `kind` and runs its handler. Generated from
        /// `for_each_job!`: a kind without a [`Handle`] impl does not compile.
        pub async fn run(
            ctx: &JobContext<'_>,
            kind: &str,
            payload: &str,
        ) -> Result<Outcome, JobError> {
            match kind {
                $(<lifecycle_jobs::$kind as Job>::NAME => {
                    handle::<lifecycle_jobs::$kind>(ctx, payload).await
                })*
                other => Err(JobError::UnknownKind(other.to_string())),
            }
        }
    };
}

lifecycle_jobs::for_each_job!(dispatch);
