//! The scheduler of a worker process: every poll interval it computes each sweep's due
//! tick and, when that tick is new to it, tries to fire it. Every process does so; the
//! tick's row in `schedule_firings`, claimed in the transaction that enqueues the sweep,
//! lets exactly one of them through.
//!
//! A schedule that has never fired (no firing recorded) does not run, on its first start, a
//! tick from more than [`FIRST_START_GRACE`] before the process started (last night's idle
//! lock on a fresh install would lock users who were never warned): that tick is recorded
//! as skipped and the schedule fires from its next tick on. One that has fired before gets
//! its one catch-up run. The grace keeps processes that start together from skipping a
//! tick that fell while they came up: one of them, started just after the tick, would
//! otherwise record it skipped before the one started just before could fire it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use super::{Schedule, Schedules, tick_key};
use crate::App;
use crate::metrics::METRICS;
use crate::queue::QueueError;
use crate::store::schedule as firings;

/// The scheduler task of one process.
pub struct Scheduler {
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Scheduler {
    /// Starts firing the configured sweeps until [`Scheduler::stop`].
    pub fn start(app: Arc<App>, schedules: Schedules) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let every = Duration::from_millis(app.settings.queue.poll_interval_ms.max(1));
        let task = tokio::spawn(async move {
            // Ticks before this are from before the process existed, for a schedule that
            // never fired.
            let started = app.clock.now();
            // The tick each sweep last fired or found fired: only a new one is tried.
            let mut settled: Vec<Option<DateTime<Utc>>> = vec![None; schedules.schedules.len()];
            loop {
                let now = app.clock.now();
                for (schedule, settled) in schedules.schedules.iter().zip(settled.iter_mut()) {
                    if let Some(next) = schedule.next_tick(now) {
                        METRICS.next_firing(schedule.sweep.name, next);
                    }
                    let Some(tick) = schedule.due_tick(now, schedules.max_lateness) else {
                        continue;
                    };
                    if *settled == Some(tick) {
                        continue;
                    }
                    match fire_tick(&app, schedule, tick, Some(started)).await {
                        Ok(_) => *settled = Some(tick),
                        // Tried again next round: the tick stays due until max_lateness.
                        Err(error) => {
                            tracing::warn!(sweep = schedule.sweep.name, %tick, %error, "could not fire a sweep")
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        Self { task, stop }
    }

    /// Stops after the round under way.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// What became of a due tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firing {
    /// This call claimed the tick and enqueued the sweep, this job.
    Enqueued(Uuid),
    /// This call claimed the tick of a schedule that had never fired, a tick from before the
    /// process started, and recorded it as skipped.
    SkippedFirstStart,
    /// Another process (or an earlier call) had claimed the tick.
    AlreadyClaimed,
}

/// How long before a process's start a tick may be and still be fired at a schedule's first
/// start: a tick this recent is the one due now, not a missed one.
pub const FIRST_START_GRACE: chrono::Duration = chrono::Duration::minutes(1);

/// The outcome recorded on a tick skipped at a schedule's first start.
pub const SKIPPED_FIRST_START: &str = "skipped (first start)";

/// Fires `schedule`'s `tick`: claims its row and enqueues the sweep in one transaction,
/// then hands the job to the transport. Returns the job's id when this call fired it,
/// `None` when another process (or an earlier call) had.
pub async fn fire(
    app: &App,
    schedule: &Schedule,
    tick: DateTime<Utc>,
) -> Result<Option<Uuid>, QueueError> {
    Ok(match fire_tick(app, schedule, tick, None).await? {
        Firing::Enqueued(job) => Some(job),
        Firing::SkippedFirstStart | Firing::AlreadyClaimed => None,
    })
}

/// [`fire`], except that when `started` is given and the schedule has never fired, a tick
/// more than [`FIRST_START_GRACE`] before `started` is claimed as skipped
/// ([`SKIPPED_FIRST_START`]) and nothing enqueued.
pub async fn fire_tick(
    app: &App,
    schedule: &Schedule,
    tick: DateTime<Utc>,
    started: Option<DateTime<Utc>>,
) -> Result<Firing, QueueError> {
    let sweep = schedule.sweep;
    let tick_ms = tick.timestamp_millis();
    let mut tx = app.store.begin().await?;
    let first_start = match started {
        Some(started) if tick < started - FIRST_START_GRACE => {
            !firings::has_fired(&mut tx, sweep.name).await?
        }
        _ => false,
    };
    if !firings::claim_tick(&mut tx, sweep.name, tick_ms, app.clock.now()).await? {
        tx.rollback().await?;
        return Ok(Firing::AlreadyClaimed);
    }
    if first_start {
        firings::set_skipped(
            &mut tx,
            sweep.name,
            tick_ms,
            SKIPPED_FIRST_START,
            app.clock.now(),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(sweep = sweep.name, %tick, "first start: a tick from before the process started is skipped, not run");
        return Ok(Firing::SkippedFirstStart);
    }
    let request = (sweep.job)(tick)?;
    let request = crate::queue::EnqueueRequest {
        idempotency_key: Some(tick_key(sweep, tick)),
        ..request
    };
    let (enqueued, after_commit) = app.queue.enqueue_in(&mut tx, request).await?;
    firings::set_job(&mut tx, sweep.name, tick_ms, enqueued.id).await?;
    tx.commit().await?;
    tracing::info!(sweep = sweep.name, %tick, job_id = %enqueued.id, "sweep fired");
    METRICS.sweep_fired(sweep.name);
    // A failed push leaves the job to the reconciler: it is in the ledger.
    if let Err(error) = app.queue.push(after_commit).await {
        tracing::warn!(%error, "could not push a sweep job; the reconciler will");
    }
    Ok(Firing::Enqueued(enqueued.id))
}
