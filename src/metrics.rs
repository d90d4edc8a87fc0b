//! The service's Prometheus metrics, served at `/metrics` (OpenMetrics text, encoded by
//! `prometheus-client`). Counters move where the work happens: `enqueued` where a job is
//! recorded (the API's process), `processed` and the duration where attempts settle (the
//! workers' process); each process exposes its own, as Prometheus expects.
//!
//! The hot path costs one lookup in a map built at start and an atomic add: every kind's
//! series are created up front (kinds are bounded by the registry; an unknown kind counts
//! as `other`), so no lock is taken per job. The ledger's gauges (`lifecycle_jobs{state}`,
//! the oldest due job's age) are read at a scrape at most once per [`LEDGER_EVERY`].

use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::admin::{self, JobState};
use crate::store::{Store, StoreError};

/// How old the ledger's gauges may be: a scrape reads the ledger at most this often.
pub const LEDGER_EVERY: Duration = Duration::from_secs(5);

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

/// Every series of the process.
pub struct Metrics {
    registry: Registry,
    kinds: HashMap<&'static str, KindSeries>,
    jobs: Family<Labels, Gauge>,
    oldest_due_age: Gauge<f64, AtomicU64>,
    ledger_read_at: tokio::sync::Mutex<Option<Instant>>,
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
            jobs,
            oldest_due_age,
            ledger_read_at: tokio::sync::Mutex::new(None),
        }
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

    /// The exposition: the process's series, the ledger's gauges read again if older than
    /// [`LEDGER_EVERY`] (one scrape at a time reads; the others wait and share it).
    pub async fn render(&self, store: &Store, now_ms: i64) -> Result<String, StoreError> {
        {
            let mut read_at = self.ledger_read_at.lock().await;
            if read_at.is_none_or(|at| at.elapsed() >= LEDGER_EVERY) {
                let counts = admin::counts_by_state(store, now_ms).await?;
                for state in JobState::ALL {
                    let count = counts
                        .iter()
                        .find(|(name, _)| name == state.as_str())
                        .map_or(0, |(_, count)| *count);
                    self.jobs
                        .get_or_create(&vec![("state", state.as_str().to_string())])
                        .set(count);
                }
                let oldest = admin::oldest_due_since_ms(store, now_ms).await?;
                let age_ms = oldest.map_or(0, |since| (now_ms - since).max(0));
                self.oldest_due_age.set(age_ms as f64 / 1000.0);
                *read_at = Some(Instant::now());
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
