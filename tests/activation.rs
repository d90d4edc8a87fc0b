//! Seats and comebacks: ActivateSalesperson takes one seat atomically (racing jobs for the
//! last seat: exactly one wins); ReactivateUser brings a user back and nothing else,
//! reclaiming a license still `releasing` instead of taking a second seat; PurchaseMade
//! reactivates a customer who allowed it. Through the queue, on both backends.

mod common;

use chrono::Duration;
use common::{Backend, TestEnv, World, request, seed_agent, seed_world};
use lifecycle::demo::crm_data;
use lifecycle::store::{audit, emails, licenses, records, teams, users};
use lifecycle_jobs::{ActivateSalesperson, Actor, DeactivateUser, PurchaseMade, ReactivateUser};

const SEATS_TAKEN: &str = "SELECT COUNT(*) FROM salesperson_licenses
     WHERE account_id = $1 AND country = 'ES' AND state IN ('active', 'releasing')";
const LICENSES_OF_USER: &str = "SELECT COUNT(*) FROM salesperson_licenses WHERE user_id = $1";
const ACTIVE_SUBSCRIPTIONS: &str =
    "SELECT COUNT(*) FROM subscriptions WHERE user_id = $1 AND state = 'active'";

fn activate(world: &World, user_id: i64, country: &str) -> ActivateSalesperson {
    ActivateSalesperson {
        account_id: world.account,
        user_id,
        actor: Actor::User(world.admin),
        country: country.into(),
    }
}

fn deactivate(world: &World, user_id: i64, allow_reactivation_on_purchase: bool) -> DeactivateUser {
    DeactivateUser {
        account_id: world.account,
        user_id,
        actor: Actor::User(world.admin),
        reassign_to: None,
        allow_reactivation_on_purchase,
        requested_at: None,
    }
}

fn reactivate(world: &World, user_id: i64, license_country: Option<&str>) -> ReactivateUser {
    ReactivateUser {
        account_id: world.account,
        user_id,
        actor: Actor::User(world.admin),
        license_country: license_country.map(str::to_string),
    }
}

async fn an_active_user_takes_one_seat(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let bruno = seed_agent(&env, &world, "Bruno", "es").await;

    let job = env.run(&activate(&world, bruno, "ES")).await;
    assert_eq!(job.state, "done", "{job:?}");
    let mut tx = env.tx().await;
    let license = licenses::live_for_user(&mut tx, bruno)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (license.country.as_str(), license.state.as_str()),
        ("ES", "active")
    );
    let audit_rows = audit::for_job(&mut tx, job.id).await.unwrap();
    assert_eq!(audit_rows.len(), 1);
    assert_eq!(
        (audit_rows[0].entity.as_str(), audit_rows[0].action.as_str()),
        ("salesperson_license", "activated")
    );
    tx.rollback().await.unwrap();
    assert_eq!(env.scalar(SEATS_TAKEN, world.account).await, 1);

    // Again: nothing more taken.
    assert_eq!(env.run(&activate(&world, bruno, "ES")).await.state, "done");
    assert_eq!(env.scalar(SEATS_TAKEN, world.account).await, 1);
    assert_eq!(env.scalar(LICENSES_OF_USER, bruno).await, 1);

    // A license in another country while holding one: refused, one license per user.
    let other = env.run(&activate(&world, bruno, "PT")).await;
    assert_eq!(other.state, "dead");
    assert!(other.last_error.unwrap().contains("holds a license in ES"));
}

async fn only_an_active_user_with_a_free_seat_becomes_a_salesperson(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let ines = seed_agent(&env, &world, "Ines", "es").await;
    let carla = seed_agent(&env, &world, "Carla", "es").await;
    let mut tx = env.tx().await;
    crm_data::locked(&mut tx, carla, "idle", 0, env.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let locked = env.run(&activate(&world, carla, "ES")).await;
    assert_eq!(locked.state, "dead");
    assert_eq!(locked.attempts, 1);
    assert!(locked.last_error.unwrap().contains("only an active user"));

    // No pool in France: no free license there.
    let france = env.run(&activate(&world, ines, "FR")).await;
    assert_eq!(france.state, "dead");
    assert!(
        france
            .last_error
            .unwrap()
            .starts_with("no free license in FR")
    );

    assert_eq!(env.run(&activate(&world, ines, "ES")).await.state, "done");
    let full = env
        .run(&activate(
            &world,
            seed_agent(&env, &world, "Late", "en").await,
            "ES",
        ))
        .await;
    assert_eq!(full.state, "dead");
    assert_eq!(
        full.last_error.as_deref(),
        Some("no free license in ES: 1 of 1 seats taken")
    );
    assert_eq!(env.scalar(SEATS_TAKEN, world.account).await, 1);
}

/// Many jobs race for one seat, 20 rounds: exactly one wins each time, the others are
/// refused with the reason, and the pool never holds more than its seat.
async fn racing_jobs_for_the_last_seat_exactly_one_wins(backend: Backend) {
    let mut env = TestEnv::start_with(backend, |settings| settings.queue.concurrency = 8).await;
    env.start_worker();
    for round in 0..20 {
        let world = seed_world(&env, 1).await;
        let mut contenders = Vec::new();
        for n in 0..6 {
            contenders.push(seed_agent(&env, &world, &format!("R{round}x{n}"), "en").await);
        }
        let requests = contenders
            .iter()
            .map(|user| request(&activate(&world, *user, "ES")))
            .collect();
        let enqueued = env.app.queue.enqueue_batch(requests).await.unwrap();
        let mut winners = 0;
        for job in &enqueued {
            let record = env.wait_for(job.id).await;
            match record.state.as_str() {
                "done" => winners += 1,
                "dead" => {
                    assert_eq!(
                        record.attempts, 1,
                        "round {round}: a refusal is not retried"
                    );
                    assert!(
                        record
                            .last_error
                            .as_deref()
                            .unwrap()
                            .starts_with("no free license in ES"),
                        "round {round}: {record:?}"
                    );
                }
                other => panic!("round {round}: job ended {other}"),
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one wins the seat");
        assert_eq!(
            env.scalar(SEATS_TAKEN, world.account).await,
            1,
            "round {round}"
        );
    }
}

async fn reactivation_reclaims_a_releasing_license_without_a_second_seat(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let dora = seed_agent(&env, &world, "Dora", "pt").await;
    assert_eq!(env.run(&activate(&world, dora, "ES")).await.state, "done");
    assert_eq!(
        env.run(&deactivate(&world, dora, false)).await.state,
        "done"
    );
    let mut tx = env.tx().await;
    let releasing = licenses::live_for_user(&mut tx, dora)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(releasing.state, "releasing");
    let release_at = releasing.release_at.unwrap();
    assert!(
        users::email_blocked(&mut tx, world.account, "dora@acme.test")
            .await
            .unwrap()
    );
    tx.rollback().await.unwrap();

    let job = env.run(&reactivate(&world, dora, Some("ES"))).await;
    assert_eq!(job.state, "done", "{job:?}");
    let mut tx = env.tx().await;
    let user = users::find(&mut tx, dora).await.unwrap().unwrap();
    assert_eq!(user.status, "active");
    assert_eq!(user.last_activity_at, Some(env.clock.now()));
    // The same license, active again; no second license row, one seat taken.
    let license = licenses::live_for_user(&mut tx, dora)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(license.id, releasing.id);
    assert_eq!(
        (license.state.as_str(), license.release_at),
        ("active", None)
    );
    assert!(
        !users::email_blocked(&mut tx, world.account, "dora@acme.test")
            .await
            .unwrap()
    );
    let actions: Vec<String> = audit::for_job(&mut tx, job.id)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.action)
        .collect();
    assert_eq!(actions, ["reactivated", "removed", "reclaimed"]);
    tx.rollback().await.unwrap();
    assert_eq!(env.scalar(LICENSES_OF_USER, dora).await, 1);
    assert_eq!(env.scalar(SEATS_TAKEN, world.account).await, 1);

    // A reactivation notice, in Portuguese.
    let mail = env.mail(1).await;
    assert_eq!(mail[0].header("Content-Language").as_deref(), Some("pt"));

    // The release scheduled at deactivation comes due: the reclaimed license stays.
    env.clock.set(release_at + Duration::seconds(1));
    let released_jobs = "SELECT COUNT(*) FROM jobs
         WHERE kind = 'license::release' AND state = 'done' AND account_id = $1";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while env.scalar(released_jobs, world.account).await < 1 {
        assert!(std::time::Instant::now() < deadline, "the release job ran");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut tx = env.tx().await;
    let license = licenses::find(&mut tx, releasing.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(license.state, "active");
}

async fn reactivation_restores_nothing_else(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let eli = seed_agent(&env, &world, "Eli", "en").await;
    let now = env.clock.now();
    let mut tx = env.tx().await;
    crm_data::team_member(&mut tx, world.team, eli, now)
        .await
        .unwrap();
    crm_data::subscription(&mut tx, eli, "pro", "active")
        .await
        .unwrap();
    crm_data::opportunity(&mut tx, world.account, eli, "Big deal", now)
        .await
        .unwrap();
    crm_data::task(
        &mut tx,
        world.account,
        Some(eli),
        "Call back",
        "in_progress",
        now,
    )
    .await
    .unwrap();
    crm_data::access_token(&mut tx, eli, "session", "eli-session-secret", now)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(env.run(&deactivate(&world, eli, false)).await.state, "done");
    assert_eq!(env.run(&reactivate(&world, eli, None)).await.state, "done");

    let mut tx = env.tx().await;
    let footprint = records::footprint(&mut tx, eli).await.unwrap().unwrap();
    assert_eq!(footprint.status, "active");
    assert_eq!(
        footprint.opportunities, 0,
        "opportunities stay with the new owner"
    );
    assert_eq!(footprint.open_tasks, 0, "transferred tasks stay unassigned");
    assert_eq!(
        teams::first_team_leader(&mut tx, eli).await.unwrap(),
        None,
        "teams are not rejoined"
    );
    assert_eq!(
        lifecycle::store::access::user_of_token(&mut tx, "eli-session-secret")
            .await
            .unwrap(),
        None,
        "revoked sessions stay revoked"
    );
    tx.rollback().await.unwrap();
    assert_eq!(
        env.scalar(ACTIVE_SUBSCRIPTIONS, eli).await,
        0,
        "subscriptions stay canceled"
    );
}

async fn without_a_free_seat_a_reactivation_changes_nothing(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let holder = seed_agent(&env, &world, "Holder", "en").await;
    let fay = seed_agent(&env, &world, "Fay", "en").await;
    assert_eq!(env.run(&activate(&world, holder, "ES")).await.state, "done");
    assert_eq!(env.run(&deactivate(&world, fay, false)).await.state, "done");

    let job = env.run(&reactivate(&world, fay, Some("ES"))).await;
    assert_eq!(job.state, "dead");
    assert_eq!(job.attempts, 1);
    assert!(job.last_error.unwrap().starts_with("no free license in ES"));
    let mut tx = env.tx().await;
    assert_eq!(
        users::find(&mut tx, fay).await.unwrap().unwrap().status,
        "deactivated"
    );
    assert!(
        users::email_blocked(&mut tx, world.account, "fay@acme.test")
            .await
            .unwrap()
    );
    assert!(audit::for_job(&mut tx, job.id).await.unwrap().is_empty());
    assert!(emails::for_user(&mut tx, fay).await.unwrap().is_empty());
    tx.rollback().await.unwrap();
    assert_eq!(env.scalar(LICENSES_OF_USER, fay).await, 0);
}

async fn only_a_deactivated_user_is_reactivated(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let gil = seed_agent(&env, &world, "Gil", "en").await;
    let hal = seed_agent(&env, &world, "Hal", "en").await;
    let mut tx = env.tx().await;
    crm_data::locked(&mut tx, hal, "failed_logins", 6, env.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let active = env.run(&reactivate(&world, gil, None)).await;
    assert_eq!(active.state, "done");
    let locked = env.run(&reactivate(&world, hal, None)).await;
    assert_eq!(locked.state, "dead");
    assert!(locked.last_error.unwrap().contains("unlock them instead"));
    let mut tx = env.tx().await;
    assert_eq!(
        users::find(&mut tx, hal).await.unwrap().unwrap().status,
        "locked"
    );
    tx.rollback().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        env.sink.count(),
        0,
        "no notice for a reactivation that did not happen"
    );
}

async fn a_purchase_reactivates_a_customer_who_allowed_it(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let allowed = seed_agent(&env, &world, "Allowed", "es").await;
    let refused = seed_agent(&env, &world, "Refused", "en").await;
    let staff = seed_agent(&env, &world, "Staff", "en").await;
    let mut tx = env.tx().await;
    crm_data::make_customer(&mut tx, allowed).await.unwrap();
    crm_data::make_customer(&mut tx, refused).await.unwrap();
    tx.commit().await.unwrap();
    for (user, allow) in [(allowed, true), (refused, false), (staff, true)] {
        assert_eq!(
            env.run(&deactivate(&world, user, allow)).await.state,
            "done"
        );
    }
    let purchase = |email: &str| PurchaseMade {
        account_id: world.account,
        email: email.into(),
        purchase_reference: Some("INV-2026-0042".into()),
    };

    let job = env.run(&purchase("ALLOWED@acme.test")).await;
    assert_eq!(job.state, "done", "{job:?}");
    let mut tx = env.tx().await;
    assert_eq!(
        users::find(&mut tx, allowed).await.unwrap().unwrap().status,
        "active"
    );
    let actions: Vec<String> = audit::for_job(&mut tx, job.id)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.action)
        .collect();
    assert_eq!(actions, ["reactivated", "reactivated_by_purchase"]);
    tx.rollback().await.unwrap();
    let mail = env.mail(1).await;
    assert!(mail[0].to().contains("allowed@acme.test"));
    assert_eq!(mail[0].header("Content-Language").as_deref(), Some("es"));

    // Blocklisted: refused, saying so; still deactivated.
    let blocked = env.run(&purchase("refused@acme.test")).await;
    assert_eq!(blocked.state, "dead");
    assert_eq!(blocked.attempts, 1);
    assert!(blocked.last_error.unwrap().contains("blocklist"));
    // An employee is not reactivated by a purchase; an unknown email changes nothing.
    assert_eq!(env.run(&purchase("staff@acme.test")).await.state, "done");
    assert_eq!(env.run(&purchase("nobody@acme.test")).await.state, "done");
    let mut tx = env.tx().await;
    for user in [refused, staff] {
        assert_eq!(
            users::find(&mut tx, user).await.unwrap().unwrap().status,
            "deactivated"
        );
    }
    tx.rollback().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(env.sink.count(), 1);
}

on_both_backends!(
    an_active_user_takes_one_seat,
    only_an_active_user_with_a_free_seat_becomes_a_salesperson,
    racing_jobs_for_the_last_seat_exactly_one_wins,
    reactivation_reclaims_a_releasing_license_without_a_second_seat,
    reactivation_restores_nothing_else,
    without_a_free_seat_a_reactivation_changes_nothing,
    only_a_deactivated_user_is_reactivated,
    a_purchase_reactivates_a_customer_who_allowed_it,
);
