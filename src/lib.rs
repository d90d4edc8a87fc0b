//! lifecycle: the account-lifecycle worker and scheduler of a multi-tenant sales CRM.
//!
//! [`App`] wires the parts: the store (system of record and job ledger), the queue, the
//! mailer and the clock. The CLI in `main.rs` and the integration tests both start from here.

pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod handlers;
pub mod http;
pub mod job_counts;
pub mod mail;
pub mod metrics;
pub mod queue;
pub mod retrying;
pub mod schedule;
pub mod store;

use std::sync::Arc;

use clock::Clock;
use config::Settings;
use mail::{MailError, Mailer};
use queue::{Queue, QueueError};
use store::{Store, StoreError};

/// The running parts of one process.
#[derive(Debug)]
pub struct App {
    pub settings: Settings,
    pub store: Store,
    pub queue: Queue,
    pub mailer: Mailer,
    pub clock: Clock,
    /// Jobs by kind and state as last counted, for the overview of a big ledger.
    pub job_counts: job_counts::KeptCounts,
}

/// Why a process could not start. Each message is one line naming the dependency (its URL
/// without the password) and the cause once.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database cannot be reached or opened; its message names it.
    #[error(transparent)]
    Database(StoreError),
    /// The database answered but its schema could not be brought up to date.
    #[error("cannot migrate the database: {0}")]
    Migrate(#[source] StoreError),
    /// Redis (the queue's transport) cannot be reached.
    #[error("cannot connect to Redis at {url}: {reason}")]
    Redis { url: String, reason: String },
    #[error(transparent)]
    Mail(#[from] MailError),
}

impl StartError {
    /// Whether the configuration itself is wrong (a bad URL or sender), as opposed to a
    /// dependency that does not answer: the CLI exits 2 for the first, 1 for the second.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            StartError::Mail(MailError::Config(_))
                | StartError::Database(StoreError::UnsupportedUrl(_))
        )
    }
}

impl App {
    /// Connects to the database and the queue, then migrates the database: for the
    /// commands (`migrate`, `enqueue`, `jobs`, `demo`) and the tests.
    pub async fn start(settings: Settings, clock: Clock) -> Result<Arc<Self>, StartError> {
        Self::start_checked(settings, clock, false).await
    }

    /// [`App::start`] for `run`, which also checks that the SMTP server answers. An
    /// unreachable one is a warning, not a failure: mail waits in the queue and is retried,
    /// while every other job goes on (an SMTP outage only delays mail).
    pub async fn start_service(settings: Settings, clock: Clock) -> Result<Arc<Self>, StartError> {
        Self::start_checked(settings, clock, true).await
    }

    async fn start_checked(
        settings: Settings,
        clock: Clock,
        check_mail: bool,
    ) -> Result<Arc<Self>, StartError> {
        let mailer = Mailer::from_settings(&settings.mail)?;
        // Every dependency is reached before anything is changed: a process pointed at the
        // wrong database, or whose Redis is down, must fail without migrating that database.
        let store = Store::connect(
            settings.database.url.expose(),
            settings.database.max_connections,
        )
        .await
        .map_err(StartError::Database)?;
        // Connecting the queue touches no table (only Redis, on that backend), so it can come
        // before the migration.
        let queue = match Queue::connect(store.clone(), &settings.queue, clock.clone()).await {
            Ok(queue) => queue,
            Err(error) => {
                store.close().await;
                return Err(StartError::Redis {
                    url: store::redact_url(settings.queue.redis_url.expose()),
                    reason: match error {
                        QueueError::Redis(error) => error.to_string(),
                        other => other.to_string(),
                    },
                });
            }
        };
        if check_mail && let Err(error) = mailer.check_connection().await {
            let reason = match error {
                MailError::Unavailable(reason) => reason,
                other => other.to_string(),
            };
            tracing::warn!(
                "mail server {} unreachable at start ({reason}): starting anyway; mail waits \
                 in the queue and is retried",
                store::redact_url(settings.mail.smtp_url.expose())
            );
        }
        store.migrate().await.map_err(StartError::Migrate)?;
        Ok(Arc::new(Self {
            settings,
            store,
            queue,
            mailer,
            clock,
            job_counts: job_counts::KeptCounts::default(),
        }))
    }
}
