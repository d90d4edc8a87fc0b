//! Edges of two rules, on both backends: emails compare as people write them (SPEC section
//! 3: case-insensitively, in full Unicode, whoever wrote the row), and a deactivation bills
//! the cycle running when it was asked for, not when the job happens to run.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{Backend, TestEnv, World, seed_world};
use lifecycle::demo::crm_data;
use lifecycle::store::{licenses, users};
use lifecycle_jobs::{
    Actor, CreateUser, DeactivateSalesperson, DeactivateUser, PurchaseMade, UserKind,
};

fn create(world: &World, email: &str) -> CreateUser {
    CreateUser {
        account_id: world.account,
        actor: Actor::User(world.admin),
        first_name: "Nuevo".into(),
        last_name: "Usuario".into(),
        email: email.into(),
        country: "ES".into(),
        language: "es".into(),
        role_id: world.agent_role,
        team_id: world.team,
        copy_permissions_from: None,
        simulator_only: false,
        kind: UserKind::Employee,
    }
}

async fn seed_user(env: &TestEnv, world: &World, email: &str, status: &str) -> i64 {
    let mut tx = env.tx().await;
    let id = crm_data::user(
        &mut tx,
        &crm_data::NewUser {
            account_id: world.account,
            role_id: world.agent_role,
            first_name: "Seeded",
            last_name: "User",
            email,
            country: "ES",
            status,
        },
        env.clock.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn users_in_account(env: &TestEnv, world: &World) -> i64 {
    env.scalar(
        "SELECT COUNT(*) FROM users WHERE account_id = $1",
        world.account,
    )
    .await
}

/// The CRM blocklisted `Bob@Example.com` as it was typed; the service is asked for
/// `bob@example.com` and `BOB@example.com`: both are that address, and both are refused.
async fn a_blocklist_row_in_another_case_still_blocks(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 3).await;
    let bob = seed_user(&env, &world, "Bob@Example.com", "deactivated").await;
    let mut tx = env.tx().await;
    crm_data::make_customer(&mut tx, bob).await.unwrap();
    crm_data::crm_blocklisted_email(&mut tx, world.account, "Bob@Example.com", env.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let created = env.run(&create(&world, "bob@example.com")).await;
    assert_eq!(created.state, "dead", "{created:?}");
    assert_eq!(created.attempts, 1, "refused, not retried");
    let reason = created.last_error.unwrap();
    assert!(reason.contains("blocklist"), "{reason}");

    let purchase = env
        .run(&PurchaseMade {
            account_id: world.account,
            email: "BOB@example.com".into(),
            purchase_reference: Some("INV-7".into()),
        })
        .await;
    assert_eq!(purchase.state, "dead", "{purchase:?}");
    assert!(purchase.last_error.unwrap().contains("blocklist"));

    let mut tx = env.tx().await;
    assert_eq!(
        users::find(&mut tx, bob).await.unwrap().unwrap().status,
        "deactivated",
        "the purchase reactivated nobody"
    );
    for asked in ["bob@example.com", "BOB@EXAMPLE.COM", " Bob@example.com "] {
        assert!(
            users::email_blocked(&mut tx, world.account, asked)
                .await
                .unwrap(),
            "{asked}"
        );
    }
    tx.rollback().await.unwrap();
    assert_eq!(users_in_account(&env, &world).await, 2, "no second Bob");
    assert_eq!(env.sink.count(), 0, "no credentials mailed");
}

/// `JOÃO@x.com` is a user of the account; CreateUser `joão@x.com` is that address in
/// another case (a non-ASCII letter, which SQLite's `lower()` does not fold): refused.
async fn an_address_differing_in_non_ascii_case_is_taken(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 3).await;
    let joao = seed_user(&env, &world, "JOÃO@x.com", "active").await;

    let created = env.run(&create(&world, "joão@x.com")).await;
    assert_eq!(created.state, "dead", "{created:?}");
    assert_eq!(created.attempts, 1, "refused, not retried");
    let reason = created.last_error.unwrap();
    assert!(
        reason.contains("already used") && reason.contains(&joao.to_string()),
        "{reason}"
    );
    assert_eq!(users_in_account(&env, &world).await, 2, "no second João");
    assert_eq!(env.sink.count(), 0, "no credentials mailed");

    // Blocking and unblocking go by the same comparison.
    let mut tx = env.tx().await;
    let stamp = lifecycle::store::audit::AuditStamp {
        account_id: world.account,
        actor: "system".into(),
        job_id: uuid::Uuid::now_v7(),
        at: env.clock.now(),
    };
    assert!(
        users::block_email(&mut tx, &stamp, "JOÃO@x.com")
            .await
            .unwrap()
    );
    assert!(
        users::email_blocked(&mut tx, world.account, "joão@X.COM")
            .await
            .unwrap()
    );
    assert!(
        !users::block_email(&mut tx, &stamp, "joão@x.com")
            .await
            .unwrap()
    );
    assert!(
        users::unblock_email(&mut tx, &stamp, "João@x.com")
            .await
            .unwrap()
    );
    assert!(
        !users::email_blocked(&mut tx, world.account, "JOÃO@x.com")
            .await
            .unwrap()
    );
    tx.rollback().await.unwrap();
}

/// The CRM (which shares the database) wrote `JOÃO@x.com` itself, without the comparison
/// key. On PostgreSQL a trigger computes it at once; on SQLite the trigger can only fold
/// ASCII, and the service recomputes non-ASCII keys in Rust when it starts. After a start,
/// CreateUser `joão@x.com` is refused on both.
async fn a_crm_row_in_another_non_ascii_case_is_found_after_a_start(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 3).await;
    let mut tx = env.tx().await;
    let joao = crm_data::crm_user(
        &mut tx,
        &crm_data::NewUser {
            account_id: world.account,
            role_id: world.agent_role,
            first_name: "João",
            last_name: "Silva",
            email: "JOÃO@x.com",
            country: "PT",
            status: "active",
        },
        env.clock.now(),
    )
    .await
    .unwrap();
    crm_data::crm_blocklisted_email(&mut tx, world.account, "ÉLODIE@x.fr", env.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // What a start does to the store.
    env.store().migrate().await.unwrap();

    let mut tx = env.tx().await;
    let found = users::find_by_email(&mut tx, world.account, "joão@X.com")
        .await
        .unwrap()
        .map(|user| user.id);
    assert_eq!(found, Some(joao));
    assert!(
        users::email_blocked(&mut tx, world.account, "élodie@x.fr")
            .await
            .unwrap()
    );
    tx.rollback().await.unwrap();
    let created = env.run(&create(&world, "joão@x.com")).await;
    assert_eq!(created.state, "dead", "{created:?}");
    assert!(created.last_error.unwrap().contains("already used"));
    assert_eq!(users_in_account(&env, &world).await, 2, "no second João");
}

/// The world's account bills in UTC, cycles ending on the 1st; the test clock starts on
/// 2026-03-10, so this cycle ends on April 1st.
fn cycle_end() -> DateTime<Utc> {
    "2026-04-01T00:00:00Z".parse().unwrap()
}

/// A salesperson of the world's account with a license in Spain: (user, license).
async fn seed_salesperson(env: &TestEnv, world: &World, email: &str) -> (i64, i64) {
    let user = seed_user(env, world, email, "active").await;
    let mut tx = env.tx().await;
    let license = crm_data::license(&mut tx, world.account, user, "ES", env.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (user, license)
}

async fn release_at(env: &TestEnv, license: i64) -> Option<DateTime<Utc>> {
    let mut tx = env.tx().await;
    let row = licenses::find(&mut tx, license).await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    row.release_at
}

/// Asked for one second before the cycle ends, run one second after it (a backlog): the
/// seat is billed to this cycle's end, not the next one's.
async fn a_late_deactivation_bills_the_cycle_it_was_asked_in(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 5).await;
    let (ana, ana_license) = seed_salesperson(&env, &world, "ana@acme.test").await;
    let (luis, luis_license) = seed_salesperson(&env, &world, "luis@acme.test").await;

    env.clock.set(cycle_end() - Duration::seconds(1));
    let salesperson = env
        .enqueue(common::request(&DeactivateSalesperson {
            account_id: world.account,
            user_id: ana,
            actor: Actor::User(world.admin),
            reassign_contacts_to: None,
            requested_at: None,
        }))
        .await;
    let user = env
        .enqueue(common::request(&DeactivateUser {
            account_id: world.account,
            user_id: luis,
            actor: Actor::User(world.admin),
            reassign_to: None,
            allow_reactivation_on_purchase: false,
            requested_at: None,
        }))
        .await;
    env.clock.set(cycle_end() + Duration::seconds(1));
    for job in [salesperson.id, user.id] {
        let record = env.wait_for(job).await;
        assert_eq!(record.state, "done", "{record:?}");
    }
    // Whether or not the seat is freed yet (its cycle is over), it is billed to this end.
    assert_eq!(release_at(&env, ana_license).await, Some(cycle_end()));
    assert_eq!(release_at(&env, luis_license).await, Some(cycle_end()));
}

/// A producer's `requested_at` ahead of the service's clock (beyond the clock-skew
/// allowance) is refused, naming the field.
async fn requested_at_in_the_future_is_refused(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 5).await;
    let (ana, ana_license) = seed_salesperson(&env, &world, "ana@acme.test").await;

    let future = env.clock.now() + Duration::minutes(10);
    let refused = env
        .run(&DeactivateSalesperson {
            account_id: world.account,
            user_id: ana,
            actor: Actor::User(world.admin),
            reassign_contacts_to: None,
            requested_at: Some(future),
        })
        .await;
    assert_eq!(refused.state, "dead", "{refused:?}");
    assert_eq!(refused.attempts, 1, "refused, not retried");
    let reason = refused.last_error.unwrap();
    assert!(
        reason.contains("requested_at") && reason.contains("future"),
        "{reason}"
    );
    assert_eq!(release_at(&env, ana_license).await, None, "nothing changed");
}

/// A producer's `requested_at` in the past is honored: enqueued after the cycle ended,
/// asked for before, the seat is billed to the end of that cycle.
async fn requested_at_in_the_past_is_honored(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 5).await;
    let (luis, luis_license) = seed_salesperson(&env, &world, "luis@acme.test").await;

    // Enqueued after the cycle ended, asked for before: billed to the end of that cycle.
    env.clock.set(cycle_end() + Duration::hours(2));
    let honored = env
        .run(&DeactivateUser {
            account_id: world.account,
            user_id: luis,
            actor: Actor::User(world.admin),
            reassign_to: None,
            allow_reactivation_on_purchase: false,
            requested_at: Some(cycle_end() - Duration::seconds(1)),
        })
        .await;
    assert_eq!(honored.state, "done", "{honored:?}");
    assert_eq!(release_at(&env, luis_license).await, Some(cycle_end()));
}

on_both_backends!(
    a_blocklist_row_in_another_case_still_blocks,
    an_address_differing_in_non_ascii_case_is_taken,
    a_late_deactivation_bills_the_cycle_it_was_asked_in,
    requested_at_in_the_future_is_refused,
    requested_at_in_the_past_is_honored,
    a_crm_row_in_another_non_ascii_case_is_found_after_a_start,
);
