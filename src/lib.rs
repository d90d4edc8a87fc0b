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
pub mod mail;
pub mod queue;
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
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot reach the queue: {0}")]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

impl App {
    /// Connects to the database (migrating it) and the queue.
    pub async fn start(settings: Settings, clock: Clock) -> Result<Arc<Self>, StartError> {
        let mailer = Mailer::from_settings(&settings.mail)?;
        let store = Store::connect(
            settings.database.url.expose(),
            settings.database.max_connections,
        )
        .await?;
        store.migrate().await?;
        let queue = Queue::connect(store.clone(), &settings.queue, clock.clone()).await?;
        Ok(Arc::new(Self {
            settings,
            store,
            queue,
            mailer,
            clock,
        }))
    }
}
