//! The worker runtime: apalis 1.0 workers (`WorkerBuilder`, `Monitor`, its layers) over
//! the project's own backend. The backend yields [`Delivery`]s from a [`Reader`] and, as
//! its middleware, settles every attempt in the ledger and the transport.
//!
//! A transport error never reaches apalis (a backend error stops an apalis worker for
//! good): the reader logs it and tries again with a growing pause.
//!
//! Here: the fetchers, the running of one job, and the start and stop of a process's
//! workers; the apalis backend adapter and the settler are in `backend`.

mod backend;
mod claim_renewal;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis_core::monitor::Monitor;
use apalis_core::worker::builder::WorkerBuilder;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::lifeline::{Lifeline, ProcessIdentity};
use super::maintenance::Maintenance;
use super::{Delivery, QueueError, Reader};
use crate::App;
use crate::handlers::{self, JobError, Runtime};
use crate::schedule::Schedules;
use crate::schedule::firing::Scheduler;

pub use backend::{LedgerBackend, Settle, Settler, SharedDeliveries};

/// Fetches deliveries in batches on a task of its own and hands them to a worker through
/// a small channel.
///
/// A fetch is never abandoned halfway: an apalis worker stops polling its backend the
/// moment it shuts down, and a claim cut off inside its transaction would hold the
/// database's write lock (SQLite) or a connection until it timed out. Here every claim
/// runs to its commit; the fetcher checks for the stop between batches, and whatever it
/// claimed but no worker started is put back by consumer name at shutdown.
pub struct Fetcher {
    /// Ends with what it claimed and could not hand over before the stop.
    task: tokio::task::JoinHandle<Vec<Delivery>>,
}

impl Fetcher {
    /// Starts fetching until `stopped` turns true.
    pub fn spawn(
        mut reader: Reader,
        batch_size: usize,
        deliveries: mpsc::Sender<Delivery>,
        mut stopped: watch::Receiver<bool>,
    ) -> Self {
        let task = tokio::spawn(async move {
            let mut pause = Duration::from_millis(100);
            while !*stopped.borrow() {
                let batch = match reader.next_batch(batch_size).await {
                    Ok(batch) => {
                        pause = Duration::from_millis(100);
                        batch
                    }
                    Err(error) => {
                        // Never reported to apalis: a backend error stops its worker.
                        tracing::warn!(%error, consumer = reader.consumer(), "queue unavailable, retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stopped.changed() => {}
                        }
                        pause = (pause * 2).min(Duration::from_secs(5));
                        continue;
                    }
                };
                let mut batch = batch.into_iter();
                while let Some(delivery) = batch.next() {
                    let permit = tokio::select! {
                        permit = deliveries.reserve() => permit,
                        _ = stopped.changed() => Err(mpsc::error::SendError(())),
                    };
                    match permit {
                        Ok(permit) => permit.send(delivery),
                        Err(_) => return std::iter::once(delivery).chain(batch).collect(),
                    }
                }
            }
            Vec::new()
        });
        Self { task }
    }

    /// Waits for the fetcher to stop (after its fetch under way commits); returns what it
    /// claimed and never handed over.
    pub async fn stopped(self) -> Vec<Delivery> {
        self.task.await.unwrap_or_else(|error| {
            tracing::error!(%error, "the fetcher failed");
            Vec::new()
        })
    }
}

/// Runs one delivery: the handler, inside a span that names the job.
pub async fn process(app: Arc<App>, delivery: Delivery) -> Result<(), JobError> {
    let job = &delivery.job;
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        kind = %job.kind,
        attempt = job.attempts,
        account_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    async {
        let runtime = Runtime {
            store: &app.store,
            queue: &app.queue,
            clock: &app.clock,
            mailer: &app.mailer,
            settings: &app.settings,
            job_id: job.id,
            enqueued_at: chrono::DateTime::from_timestamp_millis(job.created_at_ms),
        };
        // Boxed: the handlers' state machines together are large, and apalis moves each
        // job's future a few times before it runs: copying kilobytes per job was 7 % of the
        // worker's time at thousands of jobs a second (`memmove` in the profile).
        let started = std::time::Instant::now();
        // A job outliving a third of the visibility timeout renews its claim as it runs.
        let handler = Box::pin(handlers::run(&runtime, &job.kind, &job.payload));
        let result = claim_renewal::run_holding_claim(&app.queue, &delivery, handler).await;
        crate::metrics::METRICS.observe_duration(&job.kind, started.elapsed());
        match &result {
            Ok(outcome @ handlers::Outcome::Applied) => tracing::info!(?outcome, "job finished"),
            // A replay or nothing to do changed nothing: not worth a line per job at
            // thousands of jobs a second (the ledger records every attempt).
            Ok(outcome) => tracing::debug!(?outcome, "job finished"),
            Err(error) if error.is_permanent() => {
                tracing::warn!(error = %error, "job refused, not retried")
            }
            Err(error) => tracing::warn!(error = %error, "job failed, will retry"),
        }
        result.map(|_| ())
    }
    .instrument(span)
    .await
}

/// Fetchers per worker: while one waits for its claim to commit, the other's batch keeps the
/// workers busy. Each holds at most one batch it has claimed and not handed over, so a
/// process holds at most `workers * (FETCHERS_PER_WORKER + 1) * batch_size` jobs it has not
/// started.
const FETCHERS_PER_WORKER: usize = 2;

/// Runs `workers` apalis workers until `shutdown` resolves, then lets in-flight jobs finish
/// within the configured timeout and puts back what was fetched but not started.
pub async fn run_until<S>(app: Arc<App>, workers: usize, shutdown: S) -> Result<(), WorkerRunError>
where
    S: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let settings = app.queue.settings.clone();
    let workers = workers.max(1);
    let concurrency = settings.concurrency.max(1);
    let batch_size = settings.batch_size.clamp(1, concurrency);
    let identity = ProcessIdentity::new();
    let schedules = Schedules::from_settings(&app.settings.schedule)
        .map_err(|error| WorkerRunError::Schedule(error.to_string()))?;

    // Jobs held past the visibility timeout by a worker that left no heartbeat go back now.
    if let Err(error) = app.queue.requeue_stale().await {
        tracing::warn!(%error, "could not requeue abandoned jobs at start");
    }
    // The first beat also rescues processes that died while none was running.
    let lifeline =
        Lifeline::start(app.queue.clone(), identity.clone(), workers, concurrency).await?;
    let maintenance = Maintenance::start(app.queue.clone());
    let scheduler = Scheduler::start(app.clone(), schedules);

    // Fetching stops the moment the signal comes; in-flight jobs go on to finish.
    let (stop_fetching, fetching_stopped) = watch::channel(false);
    let stop_fetching = Arc::new(stop_fetching);
    let stop_on_signal = stop_fetching.clone();
    let shutdown = async move {
        let result = shutdown.await;
        stop_on_signal.send_replace(true);
        result
    };
    let (deliveries, receiver) = mpsc::channel(batch_size * workers);
    let receiver: SharedDeliveries = Arc::new(tokio::sync::Mutex::new(receiver));
    let mut fetchers = Vec::new();
    for worker in 0..workers {
        for fetcher in 0..FETCHERS_PER_WORKER {
            let reader = app.queue.reader(identity.consumer(worker, fetcher)).await?;
            fetchers.push(Fetcher::spawn(
                reader,
                batch_size,
                deliveries.clone(),
                fetching_stopped.clone(),
            ));
        }
    }
    drop(deliveries);

    let (settle, settler) = Settler::spawn(app.queue.clone());
    let factory_app = app.clone();
    let factory_receiver = receiver.clone();
    let process_id = identity.id.clone();
    let monitor = Monitor::new()
        .register_n(workers, move |index, _restarts| {
            let app = factory_app.clone();
            WorkerBuilder::new(format!("{process_id}/{index}"))
                .backend(LedgerBackend::new(factory_receiver.clone(), settle.clone()))
                .concurrency(concurrency)
                .catch_panic()
                .build(move |delivery: Delivery| {
                    let app = app.clone();
                    async move { process(app, delivery).await }
                })
        })
        .shutdown_timeout(Duration::from_secs(settings.shutdown_timeout_secs));
    let result = monitor.run_with_signal(shutdown).await;
    // The workers are gone with their handles; the settler writes what it holds and ends.
    let settle_deadline = Duration::from_secs(settings.shutdown_timeout_secs + 5);
    match tokio::time::timeout(settle_deadline, settler).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "the settler failed"),
        Err(_) => tracing::error!("outcomes still unrecorded at exit; those jobs will run again"),
    }

    // Also when the monitor ended on its own, without the signal.
    stop_fetching.send_replace(true);
    let mut unstarted = Vec::new();
    for fetcher in fetchers {
        unstarted.extend(fetcher.stopped().await.into_iter().map(|d| d.job.id));
    }
    {
        let mut receiver = receiver.lock().await;
        while let Ok(delivery) = receiver.try_recv() {
            unstarted.push(delivery.job.id);
        }
    }
    maintenance.stop().await;
    scheduler.stop().await;
    lifeline.stop().await;
    if let Err(error) = app.queue.leave(&identity, &unstarted).await {
        tracing::warn!(%error, "could not put back fetched jobs at shutdown; another process will");
    }
    result.map_err(|error| WorkerRunError::Monitor(error.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerRunError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("worker monitor: {0}")]
    Monitor(String),
    #[error("{0}")]
    Schedule(String),
}

/// A future that resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a SIGTERM that arrives while the process
/// is still starting (connecting, migrating, binding its port) is then a graceful stop, not
/// the default action that kills the process.
pub fn shutdown_signal() -> Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = signal(SignalKind::terminate())
            .and_then(|terminate| Ok((terminate, signal(SignalKind::interrupt())?)));
        Box::pin(async move {
            let (mut terminate, mut interrupt) = handlers?;
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            Ok(())
        })
    }
    #[cfg(not(unix))]
    {
        Box::pin(tokio::signal::ctrl_c())
    }
}
