//! The apalis backend adapter: [`LedgerBackend`] turns the deliveries the fetchers claimed
//! into apalis tasks, and its acknowledgement ([`Settle`]) hands each attempt's outcome to
//! the [`Settler`], which records them in the ledger and the transport a batch at a time.

use std::sync::Arc;
use std::task::{Context, Poll};

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::error::{AbortError, BoxDynError};
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::{RandomId, TaskId};
use apalis_core::task::{ExecutionContext, Task};
use apalis_core::worker::context::WorkerContext;
use apalis_core::worker::ext::ack::{Acknowledge, AcknowledgeLayer};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt, stream};
use tokio::sync::{mpsc, oneshot};

use crate::handlers::JobError;
use crate::queue::{AttemptResult, Delivery, Queue, QueueError};
use crate::retrying::with_retries;

/// The apalis backend over a [`super::Fetcher`]'s deliveries.
pub struct LedgerBackend {
    settle: Settle,
    deliveries: BoxStream<'static, Task<Delivery>>,
}

/// The deliveries every worker of a process takes from: whichever worker is free takes the
/// next one, so no fetched job waits on a busy (or stopped) worker.
pub type SharedDeliveries = Arc<tokio::sync::Mutex<mpsc::Receiver<Delivery>>>;

impl LedgerBackend {
    pub fn new(deliveries: SharedDeliveries, settle: Settle) -> Self {
        Self {
            settle,
            deliveries: stream::unfold(deliveries, |deliveries| async move {
                let delivery = deliveries.lock().await.recv().await?;
                let task = TaskBuilder::new(delivery.clone())
                    .task_id(TaskId::from_string(delivery.job.id.to_string()))
                    .attempt(delivery.job.attempts.max(1) as usize)
                    .data(delivery)
                    .build();
                Some((task, deliveries))
            })
            .boxed(),
        }
    }
}

impl Backend for LedgerBackend {
    type Task = Task<Delivery>;
    type Error = QueueError;

    fn poll_ready(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        self.deliveries.poll_next_unpin(cx).map(|task| task.map(Ok))
    }

    fn poll_close(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

impl BackendConfig for LedgerBackend {
    type Args = Delivery;
    type Id = RandomId;
    type Kind = Ephemeral;
    type Config = ();
    type Layer = AcknowledgeLayer<Settle>;

    fn config(&self) -> &Self::Config {
        &()
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        AcknowledgeLayer::new(self.settle.clone())
    }
}

/// Records how each attempt ended (done, retried later, or dead) through the
/// [`Settler`], which writes them in batches; the acknowledgement completes once its batch
/// is durable.
#[derive(Clone)]
pub struct Settle {
    settler: mpsc::Sender<SettleRequest>,
}

type SettleRequest = (Delivery, AttemptResult, oneshot::Sender<Result<(), String>>);

impl Acknowledge<()> for Settle {
    type Error = QueueError;
    type Future = BoxFuture<'static, Result<(), QueueError>>;

    fn ack(&mut self, result: &Result<(), BoxDynError>, ctx: &ExecutionContext) -> Self::Future {
        let attempt_result = match result {
            Ok(()) => AttemptResult::Succeeded,
            Err(error) => classify(error.as_ref()),
        };
        let delivery = ctx.data().get::<Delivery>().cloned();
        let settler = self.settler.clone();
        async move {
            let Some(delivery) = delivery else {
                return Ok(());
            };
            let (reply, settled) = oneshot::channel();
            settler
                .send((delivery, attempt_result, reply))
                .await
                .map_err(|_| QueueError::Settle("the settler has stopped".into()))?;
            settled
                .await
                .map_err(|_| QueueError::Settle("the settler has stopped".into()))?
                .map_err(QueueError::Settle)
        }
        .boxed()
    }
}

/// Collects the outcomes of attempts and records them a batch at a time: whatever has
/// arrived while the previous batch was being written, up to `MAX_SETTLE_BATCH`.
pub struct Settler;

const MAX_SETTLE_BATCH: usize = 512;

impl Settler {
    /// Starts the settler; it stops once every [`Settle`] handle is dropped, after writing
    /// what it holds.
    pub fn spawn(queue: Queue) -> (Settle, tokio::task::JoinHandle<()>) {
        let (sender, mut requests) = mpsc::channel::<SettleRequest>(4 * MAX_SETTLE_BATCH);
        let task = tokio::spawn(async move {
            let mut batch: Vec<SettleRequest> = Vec::with_capacity(MAX_SETTLE_BATCH);
            while requests.recv_many(&mut batch, MAX_SETTLE_BATCH).await > 0 {
                let attempts: Vec<(Delivery, AttemptResult)> = batch
                    .iter()
                    .map(|(delivery, result, _)| (delivery.clone(), result.clone()))
                    .collect();
                // Outcomes not recorded would wait for the visibility timeout to run again:
                // a passing database failure is ridden out first.
                let written =
                    with_retries("record outcomes", || queue.settle_batch(&attempts)).await;
                if let Err(error) = &written {
                    tracing::warn!(%error, jobs = attempts.len(), "could not record outcomes; the jobs will be delivered again");
                }
                for (_, _, reply) in batch.drain(..) {
                    let _ = reply.send(written.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                }
            }
        });
        (Settle { settler: sender }, task)
    }
}

fn classify(error: &(dyn std::error::Error + Send + Sync + 'static)) -> AttemptResult {
    if let Some(job_error) = error.downcast_ref::<JobError>() {
        return if job_error.is_permanent() {
            AttemptResult::Permanent(job_error.to_string())
        } else {
            AttemptResult::Transient(job_error.to_string())
        };
    }
    if error.downcast_ref::<AbortError>().is_some() {
        // A panic, caught: a bug, not the input's fault for sure; retried, then dead.
        return AttemptResult::Transient(format!("the handler panicked: {error}"));
    }
    AttemptResult::Transient(error.to_string())
}
