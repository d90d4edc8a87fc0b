//! One file per job kind: load, check the guards, apply the effects in one transaction.
//! Each kind's payload type implements [`Handle`] in its file; [`run`], generated from
//! `lifecycle_jobs::for_each_job!`, is the one place a job kind's name meets its handler.

pub mod activate_salesperson;
pub mod confirm_user;
pub mod create_user;
pub mod deactivate_salesperson;
pub mod deactivate_user;
pub mod expire_passwords;
pub mod job_tx;
pub mod lock_idle_users;
pub mod noop;
pub mod outbox;
pub mod prune_job_history;
pub mod purchase_made;
pub mod reactivate_user;
pub mod reassign_records;
pub mod record_activity;
pub mod record_login;
pub mod registry;
pub mod release_due_licenses;
pub mod release_license;
pub mod send_email;
pub mod sweep;
pub mod sweep_result;
pub mod unlock_user;

use lifecycle_jobs::{Actor, InvalidPayload};

use crate::domain::confirmation::LinkRefusal;
use crate::domain::guards::GuardRefusal;
use crate::domain::lockout::UnlockRefusal;
use crate::domain::seats::NoFreeLicense;
use crate::domain::user::Person;
use crate::mail::MailError;
use crate::store::accounts::AccountRow;
use crate::store::{StoreError, Tx, accounts, users};

pub use job_tx::{JobContext, JobTx};
pub use registry::{Apply, Handle, Runtime, run};

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
    /// The queue could not record or hand over the job's follow-up jobs.
    #[error("{0}")]
    Queue(String),
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
