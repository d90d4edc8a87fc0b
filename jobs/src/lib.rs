//! Job payloads of the `lifecycle` account-lifecycle worker: the types a producer service
//! depends on to hand work over, their validation and their stable names, without the worker.
//!
//! Every job carries the account it belongs to and the actor on whose behalf it runs.
//! With the `client` feature, [`client::Client`] enqueues them on a running service.
//!
//! ```
//! use lifecycle_jobs::{Actor, DeactivateSalesperson, Job};
//!
//! let job = DeactivateSalesperson {
//!     account_id: 1,
//!     user_id: 42,
//!     actor: Actor::User(7),
//!     reassign_contacts_to: None,
//!     requested_at: None,
//! };
//! job.validate().unwrap();
//! let json = serde_json::to_string(&job).unwrap();
//! let back: DeactivateSalesperson = lifecycle_jobs::decode(&json).unwrap();
//! assert_eq!(back, job);
//! assert_eq!(DeactivateSalesperson::NAME, "user::deactivate_salesperson");
//! ```
//!
//! With the `utoipa` feature, every payload type (and [`Actor`]) implements
//! `utoipa::ToSchema`, so a service can publish the payloads in an OpenAPI document; without
//! it the crate depends on serde and little else.

#![warn(missing_docs)]

mod activate_salesperson;
mod actor;
#[cfg(feature = "client")]
pub mod client;
mod confirm_user;
mod country;
mod create_user;
mod deactivate_salesperson;
mod deactivate_user;
mod noop;
mod prune_job_history;
mod purchase_made;
mod reactivate_user;
mod reassign_records;
mod record_activity;
mod record_login;
mod release_due_licenses;
mod release_license;
mod send_email;
mod sweeps;
mod unlock_user;
mod validation;
mod wire;

pub use activate_salesperson::ActivateSalesperson;
pub use actor::Actor;
pub use confirm_user::{ConfirmUser, TOKEN_LEN, sha256_hex, token_pattern};
pub use create_user::{CreateUser, UserKind};
pub use deactivate_salesperson::DeactivateSalesperson;
pub use deactivate_user::DeactivateUser;
pub use noop::Noop;
pub use prune_job_history::PruneJobHistory;
pub use purchase_made::{MAX_REFERENCE_CHARS, PurchaseMade};
pub use reactivate_user::ReactivateUser;
pub use reassign_records::ReassignRecords;
pub use record_activity::{ActivitySource, RecordActivity};
pub use record_login::RecordLogin;
pub use release_due_licenses::ReleaseDueLicenses;
pub use release_license::ReleaseLicense;
pub use send_email::SendEmail;
pub use sweeps::{ExpirePasswords, LockIdleUsers, MAX_CONFIRM_ACCOUNTS};
pub use unlock_user::{UnlockUser, UnlockVia};
pub use validation::{
    COUNTRY_CODES, EMAIL_PATTERN, InvalidPayload, LANGUAGES, MAX_EMAIL_LEN, MAX_NAME_CHARS, MIN_ID,
    NAME_PATTERN, NO_CONTROL_PATTERN,
};
pub use wire::{
    BatchItem, BatchJob, BatchRefusal, BatchRequest, BatchResponse, Enqueued, JobStatus,
    MAX_BATCH_JOBS,
};

use serde::{Serialize, de::DeserializeOwned};

/// Payloads larger than this are refused before they are decoded.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// A kind of job: its payload type, its stable name and its validation.
pub trait Job: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable namespaced name, stored with every queued job; never renamed.
    const NAME: &'static str;
    /// The form used in URLs and on the command line (`deactivate-salesperson`).
    const SLUG: &'static str;

    /// The account (tenant) the job belongs to.
    fn account_id(&self) -> i64;

    /// Checks what can be checked without the database: ids, codes, formats.
    fn validate(&self) -> Result<(), InvalidPayload>;

    /// When the producer says the request was made (`requested_at`), for the kinds that
    /// carry one: checked against the service's clock at enqueue.
    fn requested_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        None
    }

    /// The instant the request counts from, given `enqueued_at` (the service's clock when
    /// it recorded the job): [`Job::requested_at`] when the producer set one, refused naming
    /// the field when further ahead than the clock-skew allowance or older than a billing
    /// cycle; else `enqueued_at`.
    fn requested_instant(
        &self,
        enqueued_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<chrono::DateTime<chrono::Utc>, InvalidPayload> {
        validation::request_instant(self.requested_at(), enqueued_at)
    }

    /// Replaces secrets in the payload by their digests. Called before a job is recorded,
    /// so no queue or ledger ever holds a secret in clear; the handler compares digests.
    fn seal(&mut self) {}
}

/// Calls the macro `$m` with every job kind this crate defines, as the payload types' names
/// (`$m! { DeactivateSalesperson, DeactivateUser, ... }`): the one list of the kinds.
/// [`KINDS`] and [`validate_json`] are generated from it, and so are the worker's dispatch
/// and the OpenAPI document of the service, so a kind added here is handled, validated and
/// documented everywhere or the build fails. The names are those of this crate's root: a
/// caller's macro writes `lifecycle_jobs::$kind`.
///
/// ```
/// macro_rules! names {
///     ($($kind:ident),* $(,)?) => { [$(<lifecycle_jobs::$kind as lifecycle_jobs::Job>::NAME),*] };
/// }
/// let names = lifecycle_jobs::for_each_job!(names);
/// assert_eq!(names.len(), lifecycle_jobs::KINDS.len());
/// ```
#[macro_export]
macro_rules! for_each_job {
    ($m:ident) => {
        $m! {
            DeactivateSalesperson,
            DeactivateUser,
            ReassignRecords,
            ReleaseLicense,
            CreateUser,
            ConfirmUser,
            ActivateSalesperson,
            ReactivateUser,
            UnlockUser,
            RecordLogin,
            RecordActivity,
            PurchaseMade,
            SendEmail,
            Noop,
            ReleaseDueLicenses,
            PruneJobHistory,
            LockIdleUsers,
            ExpirePasswords,
        }
    };
}

macro_rules! kinds {
    ($($kind:ident),* $(,)?) => {
        &[$((<crate::$kind as Job>::NAME, <crate::$kind as Job>::SLUG)),*]
    };
}

/// Every job kind this crate defines: its name and URL/CLI slug.
pub const KINDS: &[(&str, &str)] = for_each_job!(kinds);

/// The kinds other services hand over (HTTP API, client, outbox). The rest of [`KINDS`]
/// are internal: mail delivery, the seat release a deactivation schedules, the no-op of the
/// benchmarks and the sweeps are recorded by the service itself, and the HTTP API
/// refuses them from any token. A new kind is internal until it is listed here.
pub const PUBLIC_KINDS: &[&str] = &[
    DeactivateSalesperson::NAME,
    DeactivateUser::NAME,
    ReassignRecords::NAME,
    CreateUser::NAME,
    ConfirmUser::NAME,
    ActivateSalesperson::NAME,
    ReactivateUser::NAME,
    UnlockUser::NAME,
    RecordLogin::NAME,
    RecordActivity::NAME,
    PurchaseMade::NAME,
];

/// Whether producers may enqueue the kind named `name` (a stable name) over HTTP.
pub fn is_public(name: &str) -> bool {
    PUBLIC_KINDS.contains(&name)
}

/// Looks up a job kind's stable name from its slug (`deactivate-salesperson`) or its name.
pub fn kind_name(slug_or_name: &str) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|(name, slug)| *slug == slug_or_name || *name == slug_or_name)
        .map(|(name, _)| *name)
}

/// A payload decoded, validated and sealed for its kind, re-encoded in canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedJob {
    /// The kind's stable name.
    pub name: &'static str,
    /// The account the job belongs to.
    pub account_id: i64,
    /// The payload as the worker will read it.
    pub payload: String,
    /// When the producer says the request was made, if the kind carries it.
    pub requested_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ValidatedJob {
    /// Refuses, naming `requested_at`, a request time further ahead of `now` (the service's
    /// clock at enqueue) than the clock-skew allowance, or older than a billing cycle: the
    /// same rule the handler applies against the recorded enqueue time.
    pub fn check_requested_at(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), InvalidPayload> {
        validation::request_instant(self.requested_at, now).map(|_| ())
    }
}

/// Decodes and validates `json` as a job of the kind named by `slug_or_name`: what an
/// HTTP or CLI front end calls before accepting a job of any kind.
pub fn validate_json(slug_or_name: &str, json: &str) -> Result<ValidatedJob, InvalidPayload> {
    fn check<J: Job>(json: &str) -> Result<ValidatedJob, InvalidPayload> {
        let mut job: J = decode(json)?;
        job.seal();
        Ok(ValidatedJob {
            name: J::NAME,
            account_id: job.account_id(),
            requested_at: job.requested_at(),
            payload: serde_json::to_string(&job)
                .map_err(|e| InvalidPayload::new("payload", e.to_string()))?,
        })
    }
    macro_rules! dispatch {
        ($($kind:ident),* $(,)?) => {
            match kind_name(slug_or_name) {
                $(Some(<crate::$kind as Job>::NAME) => check::<crate::$kind>(json),)*
                _ => Err(InvalidPayload::new(
                    "kind",
                    format!("unknown job kind {slug_or_name:?}"),
                )),
            }
        };
    }
    for_each_job!(dispatch)
}

/// Decodes and validates a payload, refusing oversized, malformed or invalid input with the
/// field at fault.
pub fn decode<J: Job>(json: &str) -> Result<J, InvalidPayload> {
    if json.len() > MAX_PAYLOAD_BYTES {
        return Err(InvalidPayload::new(
            "payload",
            format!(
                "is {} bytes, more than the limit of {MAX_PAYLOAD_BYTES}",
                json.len()
            ),
        ));
    }
    // A payload is an object: serde would also take a struct as an array of its fields in
    // order (`[1, 2, "system"]`), a form no producer means to send.
    if !json
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return Err(InvalidPayload::new(
            "payload",
            "must be a JSON object ({\"account_id\": ...})",
        ));
    }
    // serde_json limits nesting to 128 levels, so a deeply nested document is refused
    // without exhausting the stack. The path says which field a type error is about.
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let job: J = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        validation::name_missing_field::<J>(json, InvalidPayload::from_json_at(error))
    })?;
    deserializer.end().map_err(InvalidPayload::from_json)?;
    job.validate()?;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_validates_through_validate_json() {
        for (name, slug) in KINDS {
            assert_eq!(kind_name(slug), Some(*name));
            // An empty object is missing fields for every kind but the sweeps (every
            // account, now): refused naming a field, never the kind.
            match validate_json(slug, "{}") {
                Ok(job) => assert!(job.name.starts_with("sweep::"), "{slug} needs fields"),
                Err(refusal) => assert_ne!(refusal.field, "kind", "{slug} is known"),
            }
        }
        let refusal = validate_json("delete-everything", "{}").unwrap_err();
        assert_eq!(refusal.field, "kind");
        let ok = validate_json(
            "deactivate-user",
            r#"{"account_id":3,"user_id":4,"actor":"system"}"#,
        )
        .unwrap();
        assert_eq!(ok.name, DeactivateUser::NAME);
        assert_eq!(ok.account_id, 3);
    }

    /// `PUBLIC_KINDS` is written by hand (an allow-list): each entry must be a kind.
    #[test]
    fn every_public_kind_is_a_kind() {
        for name in PUBLIC_KINDS {
            assert!(
                KINDS.iter().any(|(kind, _)| kind == name),
                "{name} is public but not in for_each_job!"
            );
        }
    }
}
