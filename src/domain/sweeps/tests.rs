use chrono::{DateTime, Duration, Utc};

use super::*;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

const POLICY: IdlePolicy = IdlePolicy {
    idle_days: 90,
    new_user_grace_days: 7,
};

fn signals(created: &str) -> IdleSignals {
    IdleSignals {
        created_at: t(created),
        confirmed_at: None,
        last_activity_at: None,
        last_login_at: None,
    }
}

#[test]
fn ninety_days_is_an_instant_in_utc() {
    let mut s = signals("2026-01-01T00:00:00Z");
    s.last_activity_at = Some(t("2026-01-10T22:30:00Z"));
    let deadline = idle_deadline(&s, &POLICY);
    assert_eq!(deadline, t("2026-04-10T22:30:00Z"));
    let almost = t("2026-01-10T22:30:00Z")
        + Duration::days(89)
        + Duration::hours(23)
        + Duration::minutes(59);
    assert!(!is_due(deadline, almost));
    assert!(is_due(
        deadline,
        t("2026-01-10T22:30:00Z") + Duration::days(90)
    ));
}

#[test]
fn the_later_of_activity_and_sign_in_counts() {
    let mut s = signals("2026-01-01T00:00:00Z");
    s.confirmed_at = Some(t("2026-01-02T00:00:00Z"));
    s.last_activity_at = Some(t("2026-02-01T00:00:00Z"));
    s.last_login_at = Some(t("2026-03-01T00:00:00Z"));
    assert_eq!(s.last_seen(), t("2026-03-01T00:00:00Z"));
    s.last_login_at = Some(t("2026-01-15T00:00:00Z"));
    assert_eq!(s.last_seen(), t("2026-02-01T00:00:00Z"));
}

#[test]
fn never_signed_in_counts_from_confirmation_then_creation() {
    let mut s = signals("2026-01-01T00:00:00Z");
    assert_eq!(s.last_seen(), t("2026-01-01T00:00:00Z"));
    s.confirmed_at = Some(t("2026-01-05T00:00:00Z"));
    assert_eq!(idle_deadline(&s, &POLICY), t("2026-04-05T00:00:00Z"));
}

#[test]
fn new_users_are_not_locked_within_the_grace() {
    // An account with a short idle policy: the grace of 7 days still holds.
    let policy = IdlePolicy {
        idle_days: 1,
        new_user_grace_days: 7,
    };
    let s = signals("2026-01-01T00:00:00Z");
    let deadline = idle_deadline(&s, &policy);
    assert_eq!(deadline, t("2026-01-08T00:00:00Z"));
    assert!(!is_due(deadline, t("2026-01-07T23:59:00Z")));
}

#[test]
fn password_expires_after_max_age() {
    assert_eq!(password_deadline(None, 120), None);
    let deadline = password_deadline(Some(t("2026-01-01T00:00:00Z")), 120).unwrap();
    assert_eq!(deadline, t("2026-05-01T00:00:00Z"));
}

#[test]
fn each_exemption_is_named() {
    let none = ExemptionFacts {
        is_service_account: false,
        on_exempt_list: false,
        last_manager: false,
    };
    assert_eq!(exemption(&none), None);
    let service = ExemptionFacts {
        is_service_account: true,
        ..none
    };
    assert_eq!(exemption(&service), Some(Exemption::ServiceAccount));
    let listed = ExemptionFacts {
        on_exempt_list: true,
        ..none
    };
    assert_eq!(exemption(&listed), Some(Exemption::ExemptList));
    let manager = ExemptionFacts {
        last_manager: true,
        ..none
    };
    assert_eq!(exemption(&manager), Some(Exemption::LastUserManager));
    let at = t("2026-06-01T00:00:00Z");
    let due = t("2026-05-01T00:00:00Z");
    assert_eq!(
        idle_verdict(due, &none, at),
        IdleVerdict::Lock { deadline: due }
    );
    assert_eq!(
        idle_verdict(due, &listed, at),
        IdleVerdict::Exempt {
            deadline: due,
            exemption: Exemption::ExemptList
        }
    );
    let later = t("2026-07-01T00:00:00Z");
    assert_eq!(
        idle_verdict(later, &none, at),
        IdleVerdict::NotYet { deadline: later }
    );
}

#[test]
fn the_last_manager_is_kept_only_when_all_would_go() {
    let at = t("2026-06-01T00:00:00Z");
    let idle = |user_id, deadline: &str| Manager {
        user_id,
        idle_deadline: t(deadline),
        otherwise_exempt: false,
    };
    let both_idle = [
        idle(1, "2026-03-01T00:00:00Z"),
        idle(2, "2026-04-01T00:00:00Z"),
    ];
    assert_eq!(last_manager_standing(&both_idle, at), Some(2));
    let one_active = [
        idle(1, "2026-03-01T00:00:00Z"),
        idle(2, "2026-07-01T00:00:00Z"),
    ];
    assert_eq!(last_manager_standing(&one_active, at), None);
    let mut listed = both_idle;
    listed[0].otherwise_exempt = true;
    assert_eq!(last_manager_standing(&listed, at), None);
    let tie = [
        idle(5, "2026-03-01T00:00:00Z"),
        idle(3, "2026-03-01T00:00:00Z"),
    ];
    assert_eq!(last_manager_standing(&tie, at), Some(3));
    assert_eq!(last_manager_standing(&[], at), None);
}

/// Read in any order, a page at a time, the search keeps the one the whole list would.
#[test]
fn the_search_over_pages_in_any_order_keeps_the_same_manager() {
    let at = t("2026-06-01T00:00:00Z");
    let managers: Vec<Manager> = (1..=50)
        .map(|n| Manager {
            user_id: (n * 37) % 101,
            idle_deadline: t("2026-01-01T00:00:00Z") + Duration::days(n % 7),
            otherwise_exempt: false,
        })
        .collect();
    let whole = last_manager_standing(&managers, at);
    assert!(whole.is_some());
    for order in [managers.clone(), managers.iter().rev().copied().collect()] {
        let mut search = LastManagerSearch::new(at);
        for page in order.chunks(7) {
            for manager in page {
                search.see(manager);
            }
        }
        assert_eq!(search.kept(), whole);
    }
    let mut one_stays = managers.clone();
    one_stays[49].idle_deadline = t("2026-07-01T00:00:00Z");
    let mut search = LastManagerSearch::new(at);
    let read = one_stays.iter().take_while(|m| search.see(m)).count();
    assert_eq!((search.kept(), read), (None, 49));
}

#[test]
fn the_breaker_trips_above_its_share_only() {
    assert!(breaker_trips(21, 100, 0.2));
    assert!(!breaker_trips(20, 100, 0.2));
    assert!(!breaker_trips(19, 100, 0.2));
    assert!(!breaker_trips(0, 0, 0.2));
    assert!(breaker_trips(1, 1, 0.2));
    assert_eq!(lock_share(21, 100), 0.21);
    assert_eq!(lock_share(3, 0), 0.0);
}

#[test]
fn warning_stages_are_sent_in_their_window_only() {
    let deadline = t("2026-06-30T10:00:00Z");
    let stages = [14, 7, 1];
    let before = |days: i64, hours: i64| deadline - Duration::days(days) - Duration::hours(hours);
    assert_eq!(due_stage(deadline, before(15, 0), &stages), None);
    assert_eq!(due_stage(deadline, before(14, 0), &stages), Some(14));
    assert_eq!(due_stage(deadline, before(8, 0), &stages), Some(14));
    // The 14-day stage missed (no sweep ran): only the 7-day one, not the 14 late.
    assert_eq!(due_stage(deadline, before(6, 0), &stages), Some(7));
    assert_eq!(due_stage(deadline, before(0, 23), &stages), Some(1));
    assert_eq!(due_stage(deadline, deadline, &stages), None);
    assert_eq!(due_stage(deadline, before(6, 0), &[]), None);
}

#[test]
fn days_left_round_up() {
    let deadline = t("2026-06-30T10:00:00Z");
    assert_eq!(days_left(deadline, deadline - Duration::days(7)), 7);
    assert_eq!(
        days_left(deadline, deadline - Duration::days(6) - Duration::hours(23)),
        7
    );
    assert_eq!(days_left(deadline, deadline - Duration::hours(1)), 1);
    assert_eq!(whole_days(deadline - Duration::days(90), deadline), 90);
}
