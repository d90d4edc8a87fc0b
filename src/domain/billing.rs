//! Billing-cycle math: a monthly cycle ends at 00:00 account time on the anchor day, the
//! anchor clamped to the month's last day (an anchor of 31 ends February's cycle on the
//! 28th, or the 29th in a leap year).

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// The instant the billing cycle running at `now` ends: the next 00:00 account time on the
/// (clamped) anchor day strictly after `now`.
pub fn current_cycle_end(now: DateTime<Utc>, time_zone: Tz, anchor_day: u32) -> DateTime<Utc> {
    let anchor_day = anchor_day.clamp(1, 31);
    let local_today = now.with_timezone(&time_zone).date_naive();
    let (mut year, mut month) = (local_today.year(), local_today.month());
    loop {
        let end = local_midnight(time_zone, anchor_date(year, month, anchor_day));
        if end > now {
            return end;
        }
        (year, month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
    }
}

/// The anchor day of a month, clamped to its last day.
pub fn anchor_date(year: i32, month: u32, anchor_day: u32) -> NaiveDate {
    let day = anchor_day.min(days_in_month(year, month));
    NaiveDate::from_ymd_opt(year, month, day).expect("a clamped day exists in its month")
}

pub fn days_in_month(year: i32, month: u32) -> u32 {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let first_of_next = NaiveDate::from_ymd_opt(next_year, next_month, 1).expect("valid month");
    first_of_next
        .pred_opt()
        .expect("a month has a last day")
        .day()
}

/// 00:00 of `date` in `time_zone`; where a daylight-saving jump skips midnight, the first
/// instant of that day that exists.
fn local_midnight(time_zone: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    match time_zone.from_local_datetime(&midnight) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earliest, _) => earliest.with_timezone(&Utc),
        LocalResult::None => {
            // Skipped by a forward jump (at most a few hours): take the first whole minute
            // that exists.
            (1..=24 * 60)
                .find_map(|minutes| {
                    time_zone
                        .from_local_datetime(&(midnight + Duration::minutes(minutes)))
                        .earliest()
                })
                .expect("a day has an instant that exists")
                .with_timezone(&Utc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn end(now: &str, anchor: u32) -> DateTime<Utc> {
        current_cycle_end(utc(now), chrono_tz::UTC, anchor)
    }

    #[test]
    fn anchor_1_ends_on_the_first_of_next_month() {
        assert_eq!(end("2026-01-15T10:00:00Z", 1), utc("2026-02-01T00:00:00Z"));
        assert_eq!(end("2026-02-10T00:00:00Z", 1), utc("2026-03-01T00:00:00Z"));
        assert_eq!(end("2028-02-29T23:59:59Z", 1), utc("2028-03-01T00:00:00Z"));
    }

    #[test]
    fn anchor_15_ends_this_month_or_next() {
        assert_eq!(end("2026-02-03T00:00:00Z", 15), utc("2026-02-15T00:00:00Z"));
        assert_eq!(end("2026-02-15T00:00:00Z", 15), utc("2026-03-15T00:00:00Z"));
        assert_eq!(end("2026-02-20T08:00:00Z", 15), utc("2026-03-15T00:00:00Z"));
        assert_eq!(end("2028-02-14T23:00:00Z", 15), utc("2028-02-15T00:00:00Z"));
    }

    #[test]
    fn anchor_31_clamps_to_february_in_common_and_leap_years() {
        assert_eq!(end("2026-02-01T00:00:00Z", 31), utc("2026-02-28T00:00:00Z"));
        assert_eq!(end("2028-02-01T00:00:00Z", 31), utc("2028-02-29T00:00:00Z"));
        // After February's clamped end, March runs to the 31st.
        assert_eq!(end("2026-02-28T00:00:01Z", 31), utc("2026-03-31T00:00:00Z"));
        assert_eq!(end("2028-02-29T12:00:00Z", 31), utc("2028-03-31T00:00:00Z"));
        // A 30-day month clamps too.
        assert_eq!(end("2026-04-05T00:00:00Z", 31), utc("2026-04-30T00:00:00Z"));
        // Before the 31st of January, January's own anchor.
        assert_eq!(end("2026-01-30T00:00:00Z", 31), utc("2026-01-31T00:00:00Z"));
    }

    #[test]
    fn december_rolls_into_next_year() {
        assert_eq!(end("2026-12-20T00:00:00Z", 15), utc("2027-01-15T00:00:00Z"));
        assert_eq!(end("2026-12-31T12:00:00Z", 31), utc("2027-01-31T00:00:00Z"));
        assert_eq!(end("2026-12-31T23:59:59Z", 1), utc("2027-01-01T00:00:00Z"));
        assert_eq!(end("2026-12-01T00:00:00Z", 31), utc("2026-12-31T00:00:00Z"));
    }

    #[test]
    fn midnight_is_in_the_account_time_zone() {
        let madrid: Tz = "Europe/Madrid".parse().unwrap();
        // 23:30 UTC on Jan 31 is already Feb 1 in Madrid: that cycle just ended.
        let now = utc("2026-01-31T23:30:00Z");
        assert_eq!(
            current_cycle_end(now, madrid, 1),
            utc("2026-02-28T23:00:00Z"),
            "next end is Mar 1 00:00 Madrid (UTC+1)"
        );
        let new_york: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            current_cycle_end(utc("2026-07-10T12:00:00Z"), new_york, 15),
            utc("2026-07-15T04:00:00Z")
        );
    }

    #[test]
    fn a_skipped_midnight_takes_the_first_instant_of_the_day() {
        // Santiago jumps from 00:00 to 01:00 on the first Sunday of September (2026-09-06).
        let santiago: Tz = "America/Santiago".parse().unwrap();
        let end = current_cycle_end(utc("2026-09-01T12:00:00Z"), santiago, 6);
        assert_eq!(end, utc("2026-09-06T04:00:00Z"), "01:00 local, UTC-3");
    }

    #[test]
    fn days_in_month_knows_leap_years() {
        assert_eq!(days_in_month(2026, 2), 28);
        assert_eq!(days_in_month(2028, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2026, 12), 31);
    }
}
