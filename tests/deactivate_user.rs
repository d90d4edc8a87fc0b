//! DeactivateUser and ReassignRecords through the queue, on SQLite and on PostgreSQL +
//! Redis: every effect in the rows, every guard refusing with nothing changed.

mod common;

use chrono::Duration;
use common::{Backend, TestEnv};
use lifecycle::demo::crm_data::{self, NewUser};
use lifecycle::queue::EnqueueRequest;
use lifecycle::store::ledger::JobRecord;
use lifecycle::store::records::{self, Footprint};
use lifecycle::store::{Store, access, audit, users};
use lifecycle_jobs::{Actor, DeactivateUser, Job, ReassignRecords};

const BOB_SESSION: &str = "session-secret-of-bob";
const BOB_API_TOKEN: &str = "api-secret-of-bob";

/// Given: account Acme (UTC, billed on the 1st) with an admin; Nora leads North (the
/// account's first team), Sam leads South; Bob (rep, ES license, a Spanish phone number
/// and a colleague's ES license) joined South before North, holds sessions, an API token,
/// an integration, subscriptions, a playbook, contacts, tasks and opportunities; Carol
/// (no team) owns an opportunity; Dave is locked; Eve administers another account.
struct World {
    account: i64,
    admin: i64,
    nora: i64,
    sam: i64,
    bob: i64,
    carol: i64,
    dave: i64,
    eve: i64,
    bob_license: i64,
}

async fn seed_world(env: &TestEnv, colleague_license: bool) -> World {
    let t0 = env.clock.now() - Duration::days(30);
    let mut tx = env.tx().await;
    let account = common::utc_account(&mut tx, "Acme", t0).await;
    let admin_role = crm_data::role(&mut tx, account, "Admin", 100, true)
        .await
        .unwrap();
    let manager_role = crm_data::role(&mut tx, account, "Manager", 50, true)
        .await
        .unwrap();
    let rep_role = crm_data::role(&mut tx, account, "Rep", 10, false)
        .await
        .unwrap();
    let user = |role_id, email: &'static str, status: &'static str| NewUser {
        account_id: account,
        role_id,
        first_name: "Test",
        last_name: email,
        email,
        country: "ES",
        status,
    };
    let admin = crm_data::user(&mut tx, &user(admin_role, "admin@acme.test", "active"), t0)
        .await
        .unwrap();
    let nora = crm_data::user(&mut tx, &user(manager_role, "nora@acme.test", "active"), t0)
        .await
        .unwrap();
    let sam = crm_data::user(&mut tx, &user(manager_role, "sam@acme.test", "active"), t0)
        .await
        .unwrap();
    let bob = crm_data::user(&mut tx, &user(rep_role, "Bob@Acme.test", "active"), t0)
        .await
        .unwrap();
    let carol = crm_data::user(&mut tx, &user(rep_role, "carol@acme.test", "active"), t0)
        .await
        .unwrap();
    let dave = crm_data::user(&mut tx, &user(rep_role, "dave@acme.test", "locked"), t0)
        .await
        .unwrap();
    let colleague = crm_data::user(&mut tx, &user(rep_role, "luis@acme.test", "active"), t0)
        .await
        .unwrap();

    let north = crm_data::team(&mut tx, account, "North", nora, t0)
        .await
        .unwrap();
    let south = crm_data::team(&mut tx, account, "South", sam, t0 + Duration::hours(1))
        .await
        .unwrap();
    crm_data::team_member(&mut tx, south, bob, t0 + Duration::days(1))
        .await
        .unwrap();
    crm_data::team_member(&mut tx, north, bob, t0 + Duration::days(2))
        .await
        .unwrap();

    crm_data::license_pool(&mut tx, account, "ES", 5)
        .await
        .unwrap();
    let bob_license = crm_data::license(&mut tx, account, bob, "ES", t0)
        .await
        .unwrap();
    if colleague_license {
        crm_data::license(&mut tx, account, colleague, "ES", t0)
            .await
            .unwrap();
    }
    crm_data::phone_number(&mut tx, account, "ES", "+34 910 000 002", true)
        .await
        .unwrap();

    crm_data::access_token(&mut tx, bob, "session", BOB_SESSION, t0)
        .await
        .unwrap();
    crm_data::access_token(&mut tx, bob, "api", "another-live-token", t0)
        .await
        .unwrap();
    crm_data::api_token(&mut tx, bob, BOB_API_TOKEN)
        .await
        .unwrap();
    crm_data::integration(&mut tx, bob, "email_sync")
        .await
        .unwrap();
    crm_data::subscription(&mut tx, bob, "pro", "active")
        .await
        .unwrap();
    crm_data::subscription(&mut tx, bob, "old", "canceled")
        .await
        .unwrap();
    let playbook = crm_data::playbook(&mut tx, account, "Inbound")
        .await
        .unwrap();
    crm_data::playbook_member(&mut tx, playbook, bob, t0)
        .await
        .unwrap();
    for name in ["C1", "C2"] {
        crm_data::contact(&mut tx, account, Some(bob), name, t0)
            .await
            .unwrap();
    }
    crm_data::task(&mut tx, account, Some(bob), "call", "in_progress", t0)
        .await
        .unwrap();
    crm_data::task(&mut tx, account, Some(bob), "done", "completed", t0)
        .await
        .unwrap();
    for name in ["Deal 1", "Deal 2"] {
        crm_data::opportunity(&mut tx, account, bob, name, t0)
            .await
            .unwrap();
    }
    crm_data::opportunity(&mut tx, account, carol, "Carol's deal", t0)
        .await
        .unwrap();

    let eve = common::admin_of_another_account(&mut tx, t0).await;
    tx.commit().await.unwrap();
    World {
        account,
        admin,
        nora,
        sam,
        bob,
        carol,
        dave,
        eve,
        bob_license,
    }
}

fn deactivate(world: &World, user_id: i64, actor: Actor) -> DeactivateUser {
    DeactivateUser {
        account_id: world.account,
        user_id,
        actor,
        reassign_to: None,
        allow_reactivation_on_purchase: false,
        requested_at: None,
    }
}

fn request<J: Job>(job: &J) -> EnqueueRequest {
    EnqueueRequest::for_job(job, None).unwrap()
}

async fn footprint(env: &TestEnv, user: i64) -> Footprint {
    let mut tx = env.tx().await;
    let footprint = records::footprint(&mut tx, user).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    footprint
}

async fn token_user(env: &TestEnv, token: &str) -> Option<i64> {
    let mut tx = env.tx().await;
    let user = access::user_of_token(&mut tx, token).await.unwrap();
    tx.commit().await.unwrap();
    user
}

async fn scalar(env: &TestEnv, sql: &'static str, id: i64) -> i64 {
    match env.store() {
        Store::Postgres(pool) => sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap(),
        Store::Sqlite(pool) => sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

async fn blocked(env: &TestEnv, account: i64, email: &str) -> bool {
    let mut tx = env.tx().await;
    let blocked = users::email_blocked(&mut tx, account, email).await.unwrap();
    tx.commit().await.unwrap();
    blocked
}

async fn audit_count(env: &TestEnv, record: &JobRecord) -> usize {
    let mut tx = env.tx().await;
    let rows = audit::for_job(&mut tx, record.id).await.unwrap();
    tx.commit().await.unwrap();
    rows.len()
}

fn assert_refused(record: &JobRecord, reason: &str) {
    assert_eq!(record.state, "dead", "refusals are permanent");
    assert_eq!(record.attempts, 1, "refusals are not retried");
    let error = record.last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains(reason),
        "{error:?} should contain {reason:?}"
    );
}

/// Runs the job and checks it is refused for `reason` with nothing changed anywhere.
async fn refused_with_nothing_changed(
    env: &mut TestEnv,
    world: &World,
    job: DeactivateUser,
    reason: &str,
) {
    let watched = [world.bob, world.carol, world.nora, world.sam];
    let mut before = Vec::new();
    for user in watched {
        before.push(footprint(env, user).await);
    }
    let record = env.run_job(request(&job)).await;
    assert_refused(&record, reason);
    for (user, before) in watched.into_iter().zip(before) {
        assert_eq!(footprint(env, user).await, before, "user {user} unchanged");
    }
    assert_eq!(
        token_user(env, BOB_SESSION).await,
        Some(world.bob),
        "sessions intact"
    );
    assert_eq!(audit_count(env, &record).await, 0);
    assert!(!blocked(env, world.account, "bob@acme.test").await);
}

async fn deactivation_applies_every_effect(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, true).await;
    assert_eq!(
        token_user(&env, BOB_SESSION).await,
        Some(world.bob),
        "valid before"
    );
    assert_eq!(token_user(&env, BOB_API_TOKEN).await, Some(world.bob));
    let hash_before = scalar(
        &env,
        "SELECT COUNT(*) FROM users WHERE id = $1 AND api_token_hash IS NOT NULL",
        world.bob,
    )
    .await;
    assert_eq!(hash_before, 1);

    let record = env
        .run_job(request(&deactivate(
            &world,
            world.bob,
            Actor::User(world.admin),
        )))
        .await;
    assert_eq!(record.state, "done", "{:?}", record.last_error);

    let bob = footprint(&env, world.bob).await;
    assert_eq!(bob.status, "deactivated");
    // Every session and token rejected at once, the API token rotated.
    assert_eq!(token_user(&env, BOB_SESSION).await, None);
    assert_eq!(token_user(&env, "another-live-token").await, None);
    assert_eq!(token_user(&env, BOB_API_TOKEN).await, None);
    assert_eq!(
        scalar(
            &env,
            "SELECT COUNT(*) FROM access_tokens WHERE user_id = $1 AND revoked_at IS NULL",
            world.bob
        )
        .await,
        0
    );
    // Integrations disabled and email sync frozen; active subscriptions canceled.
    assert_eq!(scalar(&env, "SELECT COUNT(*) FROM integrations WHERE user_id = $1 AND enabled = FALSE AND sync_frozen = TRUE", world.bob).await, 1);
    assert_eq!(
        scalar(
            &env,
            "SELECT COUNT(*) FROM subscriptions WHERE user_id = $1 AND state = 'active'",
            world.bob
        )
        .await,
        0
    );
    assert_eq!(scalar(&env, "SELECT COUNT(*) FROM subscriptions WHERE user_id = $1 AND state = 'canceled' AND canceled_at IS NOT NULL", world.bob).await, 1, "the old cancellation is untouched");
    // Salesperson effects.
    assert_eq!(bob.license_state.as_deref(), Some("releasing"));
    assert_eq!(
        scalar(
            &env,
            "SELECT COUNT(*) FROM salesperson_licenses WHERE id = $1 AND state = 'releasing'",
            world.bob_license
        )
        .await,
        1
    );
    assert_eq!(
        (
            bob.playbooks,
            bob.contacts,
            bob.open_tasks,
            bob.completed_tasks
        ),
        (0, 0, 0, 1)
    );
    // Opportunities to the leader of Bob's first team (South, joined first): Sam.
    assert_eq!(bob.opportunities, 0);
    assert_eq!(footprint(&env, world.sam).await.opportunities, 2);
    assert_eq!(footprint(&env, world.nora).await.opportunities, 0);
    // Teams left (rows closed, not deleted); email blocklisted, lower-cased.
    assert_eq!(
        scalar(
            &env,
            "SELECT COUNT(*) FROM team_memberships WHERE user_id = $1 AND left_at IS NULL",
            world.bob
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &env,
            "SELECT COUNT(*) FROM team_memberships WHERE user_id = $1",
            world.bob
        )
        .await,
        2
    );
    assert!(blocked(&env, world.account, "bob@acme.test").await);
    // One audit row per change: 2 tokens, API token, integration, subscription, license,
    // playbook, 2 contacts, 1 task, 2 opportunities, 2 teams, blocklist, status.
    assert_eq!(
        audit_count(&env, &record).await,
        2 + 1 + 1 + 1 + 1 + 1 + 2 + 1 + 2 + 2 + 1 + 1
    );
}

async fn opportunities_go_to_reassign_to_when_given(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, true).await;
    let mut job = deactivate(&world, world.bob, Actor::User(world.admin));
    job.reassign_to = Some(world.carol);
    let record = env.run_job(request(&job)).await;
    assert_eq!(record.state, "done", "{:?}", record.last_error);
    let carol = footprint(&env, world.carol).await;
    assert_eq!(carol.opportunities, 1 + 2);
    assert_eq!(carol.contacts, 2, "named recipient gets the contacts too");
    assert_eq!(footprint(&env, world.sam).await.opportunities, 0);
}

async fn without_a_team_opportunities_go_to_the_accounts_first_team_leader(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, true).await;
    let record = env
        .run_job(request(&deactivate(
            &world,
            world.carol,
            Actor::User(world.admin),
        )))
        .await;
    assert_eq!(record.state, "done", "{:?}", record.last_error);
    assert_eq!(
        footprint(&env, world.nora).await.opportunities,
        1,
        "North is the first team"
    );
}

async fn no_active_recipient_is_refused(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, true).await;
    // The account's first team is led by a locked user: nobody can take Carol's deal.
    match env.store() {
        Store::Postgres(pool) => {
            sqlx::query("UPDATE users SET status = 'locked' WHERE id = $1")
                .bind(world.nora)
                .execute(pool)
                .await
                .unwrap();
        }
        Store::Sqlite(pool) => {
            sqlx::query("UPDATE users SET status = 'locked' WHERE id = $1")
                .bind(world.nora)
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let carol_before = footprint(&env, world.carol).await;
    let record = env
        .run_job(request(&deactivate(
            &world,
            world.carol,
            Actor::User(world.admin),
        )))
        .await;
    assert_refused(&record, "no active user can receive the opportunities");
    assert_eq!(footprint(&env, world.carol).await, carol_before);
}

async fn g5_refuses_a_locked_reassign_to(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, true).await;
    let mut job = deactivate(&world, world.bob, Actor::User(world.admin));
    job.reassign_to = Some(world.dave);
    refused_with_nothing_changed(&mut env, &world, job, "is locked, not active").await;
}

async fn g2_refuses_a_team_leader_naming_the_teams(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, true).await;
    let job = deactivate(&world, world.nora, Actor::User(world.admin));
    refused_with_nothing_changed(&mut env, &world, job, "leads the teams North").await;
}

async fn g1_refuses_a_higher_ranked_target(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, true).await;
    let admin_before = footprint(&env, world.admin).await;
    let job = deactivate(&world, world.admin, Actor::User(world.sam));
    refused_with_nothing_changed(&mut env, &world, job, "ranks higher").await;
    assert_eq!(footprint(&env, world.admin).await, admin_before);
}

async fn g3_refuses_the_last_license_of_a_country_with_phones(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, false).await;
    let job = deactivate(&world, world.bob, Actor::User(world.admin));
    refused_with_nothing_changed(&mut env, &world, job, "You must deactivate the phone numbers for this license's country before removing the last license in the country.").await;
}

async fn g4_refuses_an_actor_of_another_account(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, true).await;
    let job = deactivate(&world, world.bob, Actor::User(world.eve));
    refused_with_nothing_changed(&mut env, &world, job, "does not belong to account").await;
}

async fn allow_reactivation_keeps_the_email_off_the_blocklist(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, true).await;
    let mut job = deactivate(&world, world.bob, Actor::System);
    job.allow_reactivation_on_purchase = true;
    let record = env.run_job(request(&job)).await;
    assert_eq!(record.state, "done", "{:?}", record.last_error);
    assert_eq!(footprint(&env, world.bob).await.status, "deactivated");
    assert!(!blocked(&env, world.account, "bob@acme.test").await);
}

async fn a_replayed_deactivation_changes_nothing(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, true).await;
    let record = env
        .run_job(request(&deactivate(&world, world.bob, Actor::System)))
        .await;
    assert_eq!(record.state, "done");
    let audit_rows = audit_count(&env, &record).await;
    assert!(env.app.queue.retry_now(record.id).await.unwrap());
    let replay = env.wait_for(record.id).await;
    assert_eq!((replay.state.as_str(), replay.attempts), ("done", 2));
    assert_eq!(audit_count(&env, &record).await, audit_rows);
}

async fn reassign_records_moves_open_work_to_an_active_user(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, true).await;
    let job = ReassignRecords {
        account_id: world.account,
        from_user_id: world.bob,
        to_user_id: world.carol,
        actor: Actor::User(world.admin),
    };
    let record = env.run_job(request(&job)).await;
    assert_eq!(record.state, "done", "{:?}", record.last_error);
    let bob = footprint(&env, world.bob).await;
    assert_eq!((bob.contacts, bob.open_tasks, bob.opportunities), (0, 0, 0));
    assert_eq!(bob.completed_tasks, 1, "completed tasks stay");
    let carol = footprint(&env, world.carol).await;
    assert_eq!(
        (carol.contacts, carol.open_tasks, carol.opportunities),
        (2, 1, 3)
    );
    assert_eq!(audit_count(&env, &record).await, 2 + 1 + 2);
}

async fn reassign_records_refuses_an_inactive_recipient(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, true).await;
    let bob_before = footprint(&env, world.bob).await;
    let job = ReassignRecords {
        account_id: world.account,
        from_user_id: world.bob,
        to_user_id: world.dave,
        actor: Actor::User(world.admin),
    };
    let record = env.run_job(request(&job)).await;
    assert_refused(&record, "not active");
    assert_eq!(footprint(&env, world.bob).await, bob_before);
    assert_eq!(audit_count(&env, &record).await, 0);
}

on_both_backends!(
    deactivation_applies_every_effect,
    opportunities_go_to_reassign_to_when_given,
    without_a_team_opportunities_go_to_the_accounts_first_team_leader,
    no_active_recipient_is_refused,
    g5_refuses_a_locked_reassign_to,
    g2_refuses_a_team_leader_naming_the_teams,
    g1_refuses_a_higher_ranked_target,
    g3_refuses_the_last_license_of_a_country_with_phones,
    g4_refuses_an_actor_of_another_account,
    allow_reactivation_keeps_the_email_off_the_blocklist,
    a_replayed_deactivation_changes_nothing,
    reassign_records_moves_open_work_to_an_active_user,
    reassign_records_refuses_an_inactive_recipient,
);
