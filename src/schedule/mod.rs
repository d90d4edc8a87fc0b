//! When the sweeps run: each sweep's cron expression, read in its time zone, and the
//! scheduler task of every worker process that fires their ticks ([`firing`]).
//!
//! Ticks are computed with `croner` by a small loop of our own rather than by
//! tokio-cron-scheduler, whose jobs keep the time-zone offset they were created with (its
//! issues 87 and 107): a nightly job in Europe/Madrid would fire an hour off after a DST
//! change. `croner` reads each tick in the zone itself: a wall-clock time skipped in March
//! fires at the first instant after the gap, one repeated in October fires once (the
//! tests/schedule.rs DST test holds it to that).

pub mod firing;
pub mod status;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use lifecycle_jobs::{ExpirePasswords, Job, LockIdleUsers, PruneJobHistory, ReleaseDueLicenses};

use crate::config::{ConfigError, ScheduleSettings, SweepSchedule};
use crate::queue::{EnqueueRequest, IdempotencyKey, QueueError};

/// A sweep the scheduler fires: its name in `[schedule.<name>]` and on the command line
/// (`lifecycle sweep <cli>`), its default expression, and how to build its job for a tick.
pub struct Sweep {
    pub name: &'static str,
    /// The job kind it enqueues.
    pub kind: &'static str,
    pub cli: &'static str,
    pub default_cron: &'static str,
    pub job: fn(DateTime<Utc>) -> Result<EnqueueRequest, QueueError>,
}

/// Every scheduled sweep: adding one is adding a line (its job kind exists).
pub const SWEEPS: &[Sweep] = &[
    Sweep {
        name: "lock_idle",
        kind: LockIdleUsers::NAME,
        cli: "lock-idle",
        default_cron: "0 2 * * *",
        job: |at| {
            sweep_job(LockIdleUsers {
                at: Some(at),
                account_id: None,
                confirm_accounts: Vec::new(),
            })
        },
    },
    Sweep {
        name: "expire_passwords",
        kind: ExpirePasswords::NAME,
        cli: "expire-passwords",
        default_cron: "30 2 * * *",
        job: |at| {
            sweep_job(ExpirePasswords {
                at: Some(at),
                account_id: None,
                confirm_accounts: Vec::new(),
            })
        },
    },
    Sweep {
        name: "release_licenses",
        kind: ReleaseDueLicenses::NAME,
        cli: "release-licenses",
        default_cron: "0 3 * * *",
        job: |at| sweep_job(ReleaseDueLicenses { at }),
    },
    Sweep {
        name: "prune",
        kind: PruneJobHistory::NAME,
        cli: "prune",
        default_cron: "0 * * * *",
        job: |at| sweep_job(PruneJobHistory { at }),
    },
];

/// The time zone of a sweep whose section names none.
pub const DEFAULT_TIME_ZONE: Tz = Tz::UTC;

/// A sweep's job: of no account, keyed by nothing (the firing's row is the key).
fn sweep_job<J: Job>(job: J) -> Result<EnqueueRequest, QueueError> {
    Ok(EnqueueRequest {
        account_id: None,
        ..EnqueueRequest::for_job(&job, None)?
    })
}

/// One sweep's schedule as configured.
pub struct Schedule {
    pub sweep: &'static Sweep,
    /// The expression; blank: the sweep is disabled.
    pub expression: String,
    pub zone: Tz,
    cron: Option<Cron>,
}

impl Schedule {
    /// Reads `expression` in `zone`, refusing a malformed one naming `key`.
    pub fn new(sweep: &'static Sweep, expression: &str, zone: Tz) -> Result<Self, String> {
        let expression = expression.trim();
        let cron = if expression.is_empty() {
            None
        } else {
            let parser = CronParser::builder().seconds(Seconds::Optional).build();
            Some(
                parser
                    .parse(expression)
                    .map_err(|error| format!("{expression:?} is not a cron expression: {error}"))?,
            )
        };
        Ok(Self {
            sweep,
            expression: expression.to_string(),
            zone,
            cron,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.cron.is_some()
    }

    /// The latest tick at or before `now`, if any.
    pub fn latest_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = self.cron.as_ref()?;
        cron.find_previous_occurrence(&now.with_timezone(&self.zone), true)
            .ok()
            .map(|tick| tick.with_timezone(&Utc))
    }

    /// The first tick after `now`, if any.
    pub fn next_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = self.cron.as_ref()?;
        cron.find_next_occurrence(&now.with_timezone(&self.zone), false)
            .ok()
            .map(|tick| tick.with_timezone(&Utc))
    }

    /// The tick to fire at `now`: the latest one, when it is at most `max_lateness` old.
    /// Ticks before it are never fired: after downtime, one catch-up run, not one per
    /// missed tick.
    pub fn due_tick(
        &self,
        now: DateTime<Utc>,
        max_lateness: chrono::Duration,
    ) -> Option<DateTime<Utc>> {
        self.latest_tick(now)
            .filter(|tick| now.signed_duration_since(*tick) <= max_lateness)
    }
}

/// Every sweep's schedule, in the order of [`SWEEPS`].
pub struct Schedules {
    pub schedules: Vec<Schedule>,
    pub max_lateness: chrono::Duration,
}

impl Schedules {
    /// The sweeps' schedules as `[schedule]` configures them: an unknown sweep, a malformed
    /// expression or an unknown zone is refused naming its key.
    pub fn from_settings(settings: &ScheduleSettings) -> Result<Self, ConfigError> {
        if let Some(unknown) = settings
            .sweeps
            .keys()
            .find(|name| !SWEEPS.iter().any(|sweep| sweep.name == name.as_str()))
        {
            let names: Vec<&str> = SWEEPS.iter().map(|sweep| sweep.name).collect();
            return Err(ConfigError::Invalid(format!(
                "schedule.{unknown}: no such sweep (the sweeps: {})",
                names.join(", ")
            )));
        }
        let mut schedules = Vec::with_capacity(SWEEPS.len());
        for sweep in SWEEPS {
            let section = settings.sweeps.get(sweep.name).cloned().unwrap_or_default();
            let zone = match section.time_zone.as_deref().map(str::trim) {
                None | Some("") => DEFAULT_TIME_ZONE,
                Some(name) => name.parse::<Tz>().map_err(|_| {
                    ConfigError::Invalid(format!(
                        "schedule.{}.time_zone: {name:?} is not an IANA time zone (e.g. \"Europe/Madrid\")",
                        sweep.name
                    ))
                })?,
            };
            let expression = section.cron.as_deref().unwrap_or(sweep.default_cron);
            schedules.push(Schedule::new(sweep, expression, zone).map_err(|reason| {
                ConfigError::Invalid(format!("schedule.{}.cron: {reason}", sweep.name))
            })?);
        }
        let max_lateness = i64::try_from(settings.max_lateness_secs)
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "schedule.max_lateness_secs: {} is too large",
                    settings.max_lateness_secs
                ))
            })?;
        Ok(Self {
            schedules,
            max_lateness,
        })
    }

    /// The sweep named `cli` on the command line (`release-licenses`) or in the config.
    pub fn sweep(name: &str) -> Option<&'static Sweep> {
        SWEEPS
            .iter()
            .find(|sweep| sweep.cli == name || sweep.name == name)
    }
}

/// Unschedules every sweep (`cron = ""`): for the tests and benchmarks, whose jobs no
/// sweep may join unless they schedule one.
pub fn unschedule_all(settings: &mut ScheduleSettings) {
    for sweep in SWEEPS {
        settings.sweeps.insert(
            sweep.name.to_string(),
            SweepSchedule {
                cron: Some(String::new()),
                time_zone: None,
            },
        );
    }
}

/// The key a sweep's tick is recorded under in the ledger too: one job per tick even if
/// the firing row were bypassed.
pub fn tick_key(sweep: &Sweep, tick: DateTime<Utc>) -> IdempotencyKey {
    IdempotencyKey::internal(format!(
        "schedule:{}:{}",
        sweep.name,
        tick.timestamp_millis()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sweep_names_the_kind_it_enqueues() {
        for sweep in SWEEPS {
            let request = (sweep.job)(DateTime::UNIX_EPOCH).unwrap();
            assert_eq!(request.kind, sweep.kind, "{}", sweep.name);
        }
    }
}
