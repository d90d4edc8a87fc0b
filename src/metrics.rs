//! The service's Prometheus metrics, served at `/metrics` (OpenMetrics text, encoded by
//! `prometheus-client`). Counters move where the work happens: `enqueued` where a job is
//! recorded (the API's process), `processed` and the duration where attempts settle (the
//! workers' process); each process exposes its own, as Prometheus expects.
//!
//! The hot path costs one lookup in a map built at start and an atomic add: every kind's
//! series are created up front (kinds are bounded by the registry; an unknown kind counts
//! as `other`), so no lock is taken per job.
//!
//! The sweeps' series are labelled by the sweep's name in `[schedule.<name>]` (four). A
//! process counts the ticks it fired and the rows its sweep runs changed, and shows when
//! its scheduler fires each next.
//!
//! The gauges read from the database (`lifecycle_jobs{state}`, the oldest due job's age,
//! each sweep's last finished run, the accounts the breaker holds) are refreshed by a task
//! of the serving process every [`LEDGER_EVERY`], not by the scrape: on a ledger of a million
//! jobs the count takes longer than a scrape should. Only the first scrape after a start
//! reads them itself, so that it never shows zeros it has not read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::App;
use crate::job_counts::JobCounts;
use crate::schedule::SWEEPS;
use crate::store::admin::{self, JobState};
use crate::store::{Store, StoreError, schedule};

/// How often the serving process reads the gauges kept in the database.
pub const LEDGER_EVERY: Duration = Duration::from_secs(10);

/// The kind label of jobs of a kind the registry does not know.
const OTHER: &str = "other";

type Labels = Vec<(&'static str, String)>;

/// How an attempt (or an operator) ended a job's run, as `outcome` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Retry,
    Dead,
    Discarded,
}

struct KindSeries {
    enqueued: Counter,
    ok: Counter,
    retry: Counter,
    dead: Counter,
    discarded: Counter,
    duration: Histogram,
}

type SecondsGauge = Gauge<f64, AtomicU64>;

struct SweepSeries {
    fired: Counter,
    next_firing: SecondsGauge,
    rows_changed: Counter,
    last_finished: SecondsGauge,
}

/// Every series of the process.
pub struct Metrics {
    registry: Registry,
    kinds: HashMap<&'static str, KindSeries>,
    sweeps: HashMap<&'static str, SweepSeries>,
    jobs: Family<Labels, Gauge>,
    oldest_due_age: SecondsGauge,
    held_accounts: Gauge,
    /// Whether the database's gauges were read once; the first scrape waits for it.
    ledger_read: AtomicBool,
    first_read: tokio::sync::Mutex<()>,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("lifecycle");
        let enqueued = Family::<Labels, Counter>::default();
        let processed = Family::<Labels, Counter>::default();
        let duration = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        let jobs = Family::<Labels, Gauge>::default();
        let oldest_due_age = Gauge::<f64, AtomicU64>::default();
        let build_info = Family::<Labels, Gauge>::default();
        build_info
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])
            .set(1);
        registry.register("jobs_enqueued", "Jobs recorded, by kind", enqueued.clone());
        registry.register(
            "jobs_processed",
            "Attempts settled (ok, retry, dead) and jobs discarded by operators, by kind",
            processed.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "How long an attempt's handler ran, by kind",
            duration.clone(),
        );
        registry.register("jobs", "Jobs in the ledger, by state", jobs.clone());
        registry.register(
            "queue_oldest_job_age_seconds",
            "How long the job waiting longest has been due",
            oldest_due_age.clone(),
        );
        registry.register("build_info", "The running version", build_info);
        let sweeps = Self::sweep_series(&mut registry);
        let held_accounts = Gauge::default();
        registry.register(
            "sweep_held_accounts",
            "Accounts the idle-lock circuit breaker holds until an administrator confirms",
            held_accounts.clone(),
        );

        let names = lifecycle_jobs::KINDS.iter().map(|(name, _)| *name);
        let kinds = names
            .chain([OTHER])
            .map(|kind| {
                let label = |outcome: Option<&str>| {
                    let mut labels: Labels = vec![("kind", kind.to_string())];
                    if let Some(outcome) = outcome {
                        labels.push(("outcome", outcome.to_string()));
                    }
                    labels
                };
                let series = KindSeries {
                    enqueued: enqueued.get_or_create_owned(&label(None)),
                    ok: processed.get_or_create_owned(&label(Some("ok"))),
                    retry: processed.get_or_create_owned(&label(Some("retry"))),
                    dead: processed.get_or_create_owned(&label(Some("dead"))),
                    discarded: processed.get_or_create_owned(&label(Some("discarded"))),
                    duration: duration.get_or_create_owned(&label(None)),
                };
                (kind, series)
            })
            .collect();
        Self {
            registry,
            kinds,
            sweeps,
            jobs,
            oldest_due_age,
            held_accounts,
            ledger_read: AtomicBool::new(false),
            first_read: tokio::sync::Mutex::new(()),
        }
    }

    fn sweep_series(registry: &mut Registry) -> HashMap<&'static str, SweepSeries> {
        let fired = Family::<Labels, Counter>::default();
        let next_firing = Family::<Labels, SecondsGauge>::default();
        let rows_changed = Family::<Labels, Counter>::default();
        let last_finished = Family::<Labels, SecondsGauge>::default();
        registry.register(
            "schedule_firings",
            "Scheduled ticks this process fired (each tick fires in one process only)",
            fired.clone(),
        );
        registry.register(
            "schedule_next_firing_timestamp_seconds",
            "When this process's scheduler fires the sweep next (0 when it is disabled)",
            next_firing.clone(),
        );
        registry.register(
            "sweep_rows_changed",
            "Rows the sweep runs of this process changed (users locked or expired, licenses \
             released, jobs pruned)",
            rows_changed.clone(),
        );
        registry.register(
            "sweep_last_finished_timestamp_seconds",
            "When the sweep's latest scheduled run finished, from the database",
            last_finished.clone(),
        );
        SWEEPS
            .iter()
            .map(|sweep| {
                let labels: Labels = vec![("sweep", sweep.name.to_string())];
                let series = SweepSeries {
                    fired: fired.get_or_create_owned(&labels),
                    next_firing: next_firing.get_or_create_owned(&labels),
                    rows_changed: rows_changed.get_or_create_owned(&labels),
                    last_finished: last_finished.get_or_create_owned(&labels),
                };
                (sweep.name, series)
            })
            .collect()
    }

    fn of(&self, kind: &str) -> &KindSeries {
        self.kinds.get(kind).unwrap_or_else(|| &self.kinds[OTHER])
    }

    /// A job of `kind` was recorded.
    pub fn enqueued(&self, kind: &str) {
        self.of(kind).enqueued.inc();
    }

    /// A job of `kind` ended an attempt (or was discarded) with `outcome`.
    pub fn processed(&self, kind: &str, outcome: Outcome) {
        let series = self.of(kind);
        match outcome {
            Outcome::Ok => series.ok.inc(),
            Outcome::Retry => series.retry.inc(),
            Outcome::Dead => series.dead.inc(),
            Outcome::Discarded => series.discarded.inc(),
        };
    }

    /// An attempt's handler of `kind` ran for `elapsed`.
    pub fn observe_duration(&self, kind: &str, elapsed: Duration) {
        self.of(kind).duration.observe(elapsed.as_secs_f64());
    }

    /// This process's scheduler fired a tick of the sweep named `sweep`.
    pub fn sweep_fired(&self, sweep: &str) {
        if let Some(series) = self.sweeps.get(sweep) {
            series.fired.inc();
        }
    }

    /// When this process's scheduler fires `sweep` next.
    pub fn next_firing(&self, sweep: &str, at: DateTime<Utc>) {
        if let Some(series) = self.sweeps.get(sweep) {
            series.next_firing.set(seconds(at));
        }
    }

    /// A run of the sweep of job kind `kind` changed `rows` rows.
    pub fn sweep_rows_changed(&self, kind: &str, rows: u64) {
        let sweep = SWEEPS.iter().find(|sweep| sweep.kind == kind);
        if let Some(series) = sweep.and_then(|sweep| self.sweeps.get(sweep.name)) {
            series.rows_changed.inc_by(rows);
        }
    }

    /// Reads the gauges kept in the database. Returns the jobs counted by kind and state, which
    /// the overview shows as well.
    pub async fn read_ledger(&self, store: &Store, now_ms: i64) -> Result<JobCounts, StoreError> {
        let counts = JobCounts::read(store, now_ms).await?;
        for state in JobState::ALL {
            self.jobs
                .get_or_create(&vec![("state", state.as_str().to_string())])
                .set(counts.in_state(state.as_str()));
        }
        let oldest = admin::oldest_due_since_ms(store, now_ms).await?;
        let age_ms = oldest.map_or(0, |since| (now_ms - since).max(0));
        self.oldest_due_age.set(age_ms as f64 / 1000.0);
        let sweeps = schedule::sweep_gauges(store).await?;
        for (sweep, at) in &sweeps.last_finished {
            if let Some(series) = self.sweeps.get(sweep.as_str()) {
                series.last_finished.set(seconds(*at));
            }
        }
        self.held_accounts.set(sweeps.held_accounts);
        self.ledger_read.store(true, Ordering::Release);
        Ok(counts)
    }

    /// Keeps the database's gauges, and the overview's counts, fresh while the returned task
    /// runs (the serving process aborts it when it stops serving).
    pub fn refresh_in_background(app: Arc<App>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEDGER_EVERY).await;
                match METRICS.read_ledger(&app.store, app.clock.now_ms()).await {
                    Ok(counts) => app.job_counts.keep(counts).await,
                    Err(error) => {
                        tracing::warn!(%error, "could not read the metrics' gauges from the database")
                    }
                }
            }
        })
    }

    /// The exposition: the process's series and the gauges last read from the database
    /// (read now if this is the first scrape since the process started).
    pub async fn render(&self, store: &Store, now_ms: i64) -> Result<String, StoreError> {
        if !self.ledger_read.load(Ordering::Acquire) {
            let _first = self.first_read.lock().await;
            if !self.ledger_read.load(Ordering::Acquire) {
                self.read_ledger(store, now_ms).await?;
            }
        }
        let mut text = String::new();
        // Writing to a String cannot fail; were it to, the scrape shows what was written.
        if encode(&mut text, &self.registry).is_err() {
            tracing::warn!("could not encode every metric");
        }
        Ok(text)
    }
}

fn seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}
