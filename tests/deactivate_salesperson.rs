//! DeactivateSalesperson through the queue, on SQLite and on PostgreSQL + Redis.

mod common;

use chrono::{DateTime, Utc};
use common::{Backend, TestEnv};
use lifecycle::demo::crm_data::{self, NewAccount, NewUser};
use lifecycle::domain::guards::LAST_LICENSE_WITH_PHONES;
use lifecycle::queue::EnqueueRequest;
use lifecycle::store::records::{self, Footprint};
use lifecycle::store::{Tx, audit};
use lifecycle_jobs::{Actor, DeactivateSalesperson, Job, ReleaseLicense};

/// Given: an account in Madrid billed on the 31st, with an admin, a low-ranked rep who
/// manages nobody, a senior manager, the salesperson Ana (ES license, two playbooks,
/// three contacts, a created, an in-progress and a completed task), a colleague with
/// another ES license, and a second account with its own admin.
struct World {
    account: i64,
    admin: i64,
    rep_without_rights: i64,
    manager: i64,
    ana: i64,
    colleague: i64,
    deactivated_user: i64,
    ana_license: i64,
    colleague_license: i64,
    other_account_admin: i64,
    contacts: Vec<i64>,
    created_task: i64,
    in_progress_task: i64,
    completed_task: i64,
}

struct Options {
    contacts_policy: &'static str,
    colleague_has_license: bool,
    spanish_phone: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            contacts_policy: "unassign",
            colleague_has_license: true,
            spanish_phone: true,
        }
    }
}

async fn seed_world(env: &TestEnv, options: Options) -> World {
    let now = env.clock.now();
    let mut tx = env.tx().await;
    let account = crm_data::account(
        &mut tx,
        &NewAccount {
            name: "Acme",
            time_zone: "Europe/Madrid",
            billing_anchor_day: 31,
            contacts_policy: options.contacts_policy,
        },
        now,
    )
    .await
    .unwrap();
    let admin_role = crm_data::role(&mut tx, account, "Admin", 100, true)
        .await
        .unwrap();
    let manager_role = crm_data::role(&mut tx, account, "Manager", 50, true)
        .await
        .unwrap();
    let rep_role = crm_data::role(&mut tx, account, "Rep", 10, false)
        .await
        .unwrap();
    let junior_admin_role = crm_data::role(&mut tx, account, "Junior admin", 5, true)
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
    let admin = crm_data::user(&mut tx, &user(admin_role, "admin@acme.test", "active"), now)
        .await
        .unwrap();
    let rep_without_rights =
        crm_data::user(&mut tx, &user(rep_role, "rep@acme.test", "active"), now)
            .await
            .unwrap();
    let manager = crm_data::user(
        &mut tx,
        &user(junior_admin_role, "junior@acme.test", "active"),
        now,
    )
    .await
    .unwrap();
    let ana = crm_data::user(&mut tx, &user(manager_role, "ana@acme.test", "active"), now)
        .await
        .unwrap();
    let colleague = crm_data::user(&mut tx, &user(rep_role, "luis@acme.test", "active"), now)
        .await
        .unwrap();
    let deactivated_user = crm_data::user(
        &mut tx,
        &user(rep_role, "gone@acme.test", "deactivated"),
        now,
    )
    .await
    .unwrap();

    crm_data::license_pool(&mut tx, account, "ES", 5)
        .await
        .unwrap();
    let ana_license = crm_data::license(&mut tx, account, ana, "ES", now)
        .await
        .unwrap();
    let colleague_license = if options.colleague_has_license {
        crm_data::license(&mut tx, account, colleague, "ES", now)
            .await
            .unwrap()
    } else {
        0
    };
    if options.spanish_phone {
        crm_data::phone_number(&mut tx, account, "ES", "+34 910 000 001", true)
            .await
            .unwrap();
    }
    crm_data::phone_number(&mut tx, account, "FR", "+33 100 000 000", true)
        .await
        .unwrap();

    for name in ["Inbound", "Renewals"] {
        let playbook = crm_data::playbook(&mut tx, account, name).await.unwrap();
        crm_data::playbook_member(&mut tx, playbook, ana, now)
            .await
            .unwrap();
        crm_data::playbook_member(&mut tx, playbook, colleague, now)
            .await
            .unwrap();
    }
    let mut contacts = Vec::new();
    for name in ["C1", "C2", "C3"] {
        contacts.push(
            crm_data::contact(&mut tx, account, Some(ana), name, now)
                .await
                .unwrap(),
        );
    }
    crm_data::contact(&mut tx, account, Some(colleague), "Colleague's", now)
        .await
        .unwrap();
    let created_task = crm_data::task(&mut tx, account, Some(ana), "call", "created", now)
        .await
        .unwrap();
    let in_progress_task = crm_data::task(&mut tx, account, Some(ana), "quote", "in_progress", now)
        .await
        .unwrap();
    let completed_task = crm_data::task(&mut tx, account, Some(ana), "demo", "completed", now)
        .await
        .unwrap();
    crm_data::opportunity(&mut tx, account, ana, "Big deal", now)
        .await
        .unwrap();

    let other_account_admin = common::admin_of_another_account(&mut tx, now).await;
    tx.commit().await.unwrap();
    World {
        account,
        admin,
        rep_without_rights,
        manager,
        ana,
        colleague,
        deactivated_user,
        ana_license,
        colleague_license,
        other_account_admin,
        contacts,
        created_task,
        in_progress_task,
        completed_task,
    }
}

fn deactivation(world: &World, actor: Actor) -> DeactivateSalesperson {
    DeactivateSalesperson {
        account_id: world.account,
        user_id: world.ana,
        actor,
        reassign_contacts_to: None,
        requested_at: None,
    }
}

fn request(job: &DeactivateSalesperson) -> EnqueueRequest {
    EnqueueRequest::for_job(job, None).unwrap()
}

#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct LicenseView {
    state: String,
    release_at: Option<DateTime<Utc>>,
}

async fn license(tx: &mut Tx, id: i64) -> LicenseView {
    let row = lifecycle::store::licenses::find(tx, id)
        .await
        .unwrap()
        .unwrap();
    LicenseView {
        state: row.state,
        release_at: row.release_at,
    }
}

#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct TaskView {
    assignee_id: Option<i64>,
    state: String,
    transferable: bool,
    transfer_reason: Option<String>,
}

async fn task(env: &TestEnv, id: i64) -> TaskView {
    query_one(
        env,
        "SELECT assignee_id, state, transferable, transfer_reason FROM tasks WHERE id = $1",
        id,
    )
    .await
}

async fn query_one<T>(env: &TestEnv, sql: &'static str, id: i64) -> T
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin,
{
    match env.store() {
        lifecycle::store::Store::Postgres(pool) => {
            sqlx::query_as(sql).bind(id).fetch_one(pool).await.unwrap()
        }
        lifecycle::store::Store::Sqlite(pool) => {
            sqlx::query_as(sql).bind(id).fetch_one(pool).await.unwrap()
        }
    }
}

async fn count(env: &TestEnv, sql: &'static str, id: i64) -> i64 {
    let (n,): (i64,) = query_one(env, sql, id).await;
    n
}

async fn footprint(env: &TestEnv, user: i64) -> Footprint {
    let mut tx = env.tx().await;
    let footprint = records::footprint(&mut tx, user).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    footprint
}

async fn audit_rows(env: &TestEnv, job: uuid::Uuid) -> Vec<audit::AuditRow> {
    let mut tx = env.tx().await;
    let rows = audit::for_job(&mut tx, job).await.unwrap();
    tx.commit().await.unwrap();
    rows
}

async fn happy_path_applies_every_effect(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, Options::default()).await;
    let colleague_before = footprint(&env, world.colleague).await;

    let record = env
        .run_job(request(&deactivation(&world, Actor::User(world.admin))))
        .await;
    assert_eq!(record.state, "done", "{:?}", record.last_error);
    assert_eq!(record.attempts, 1);

    let mut tx = env.tx().await;
    // License releasing, billed until the cycle ends: anchor 31 clamps to March 31,
    // 00:00 in Madrid (UTC+2 after the March 29 change) = March 30, 22:00 UTC.
    let view = license(&mut tx, world.ana_license).await;
    assert_eq!(view.state, "releasing");
    assert_eq!(
        view.release_at,
        Some("2026-03-30T22:00:00Z".parse().unwrap())
    );
    // The colleague's license is untouched.
    assert_eq!(
        license(&mut tx, world.colleague_license).await.state,
        "active"
    );
    tx.commit().await.unwrap();

    // Out of every playbook, contacts unassigned, open tasks released, completed kept.
    let after = footprint(&env, world.ana).await;
    assert_eq!(after.playbooks, 0);
    assert_eq!(after.contacts, 0);
    assert_eq!(after.open_tasks, 0);
    assert_eq!(after.completed_tasks, 1);
    for contact in &world.contacts {
        let (assignee,): (Option<i64>,) = query_one(
            &env,
            "SELECT assignee_id FROM contacts WHERE id = $1",
            *contact,
        )
        .await;
        assert_eq!(assignee, None);
    }
    for id in [world.created_task, world.in_progress_task] {
        let view = task(&env, id).await;
        assert_eq!(view.assignee_id, None);
        assert!(view.transferable);
        assert_eq!(view.transfer_reason.as_deref(), Some("User deactivated"));
    }
    assert_eq!(
        task(&env, world.completed_task).await,
        TaskView {
            assignee_id: Some(world.ana),
            state: "completed".into(),
            transferable: false,
            transfer_reason: None,
        }
    );
    // Platform access stays; opportunities stay with her.
    assert_eq!(after.status, "active");
    assert_eq!(after.opportunities, 1);
    // Playbook memberships are closed, not deleted.
    assert_eq!(
        count(&env, "SELECT COUNT(*) FROM playbook_memberships WHERE user_id = $1 AND removed_at IS NOT NULL", world.ana).await,
        2
    );
    // Nobody else changed.
    assert_eq!(footprint(&env, world.colleague).await, colleague_before);

    // One audit row per change, naming actor and job.
    let rows = audit_rows(&env, record.id).await;
    let summary: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.entity.clone(), r.action.clone()))
        .collect();
    assert_eq!(rows.len(), 1 + 2 + 3 + 2, "{summary:?}");
    assert!(
        rows.iter()
            .all(|r| r.actor == format!("user:{}", world.admin))
    );
    assert!(rows.iter().all(|r| r.job_id == Some(record.id)));
    assert_eq!(rows.iter().filter(|r| r.entity == "contact").count(), 3);
    assert_eq!(rows.iter().filter(|r| r.entity == "task").count(), 2);
    assert_eq!(
        rows.iter()
            .filter(|r| r.entity == "playbook_membership")
            .count(),
        2
    );

    // The seat is freed by a ReleaseLicense job due at the release instant.
    let (release_job_count,): (i64,) = query_one(
        &env,
        "SELECT COUNT(*) FROM jobs WHERE kind = 'license::release' AND state = 'queued' AND run_at_ms = $1",
        "2026-03-30T22:00:00Z".parse::<DateTime<Utc>>().unwrap().timestamp_millis(),
    )
    .await;
    assert_eq!(release_job_count, 1);
}

async fn release_license_fires_at_the_instant_and_only_once(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, Options::default()).await;
    let record = env
        .run_job(request(&deactivation(&world, Actor::System)))
        .await;
    assert_eq!(record.state, "done", "{:?}", record.last_error);

    // A minute before the end of the cycle the seat is still taken.
    env.clock.set("2026-03-30T21:59:00Z".parse().unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut tx = env.tx().await;
    assert_eq!(license(&mut tx, world.ana_license).await.state, "releasing");
    tx.commit().await.unwrap();

    // At the instant, the delayed job frees it.
    env.clock.set("2026-03-30T22:00:00Z".parse().unwrap());
    let release_job: (uuid::Uuid,) = query_one_uuid(&env, "license::release").await;
    let release = env.wait_for(release_job.0).await;
    assert_eq!(release.state, "done", "{:?}", release.last_error);
    let mut tx = env.tx().await;
    assert_eq!(license(&mut tx, world.ana_license).await.state, "released");
    tx.commit().await.unwrap();

    // A second ReleaseLicense for the same license is a no-op.
    let again = env
        .run_job(
            EnqueueRequest::for_job(
                &ReleaseLicense {
                    account_id: world.account,
                    license_id: world.ana_license,
                },
                None,
            )
            .unwrap(),
        )
        .await;
    assert_eq!(again.state, "done");
    assert!(audit_rows(&env, again.id).await.is_empty());
}

async fn query_one_uuid(env: &TestEnv, kind: &'static str) -> (uuid::Uuid,) {
    match env.store() {
        lifecycle::store::Store::Postgres(pool) => {
            sqlx::query_as("SELECT id FROM jobs WHERE kind = $1")
                .bind(kind)
                .fetch_one(pool)
                .await
                .unwrap()
        }
        lifecycle::store::Store::Sqlite(pool) => {
            sqlx::query_as("SELECT id FROM jobs WHERE kind = $1")
                .bind(kind)
                .fetch_one(pool)
                .await
                .unwrap()
        }
    }
}

async fn contacts_kept_by_account_policy(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(
        &env,
        Options {
            contacts_policy: "keep",
            ..Options::default()
        },
    )
    .await;
    let record = env
        .run_job(request(&deactivation(&world, Actor::User(world.admin))))
        .await;
    assert_eq!(record.state, "done", "{:?}", record.last_error);
    let after = footprint(&env, world.ana).await;
    assert_eq!(after.contacts, 3, "kept by policy");
    assert_eq!(
        after.open_tasks, 0,
        "tasks are released whatever the policy"
    );
}

async fn contacts_moved_to_reassign_to(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, Options::default()).await;
    let mut job = deactivation(&world, Actor::User(world.admin));
    job.reassign_contacts_to = Some(world.colleague);
    let record = env.run_job(request(&job)).await;
    assert_eq!(record.state, "done", "{:?}", record.last_error);
    assert_eq!(footprint(&env, world.ana).await.contacts, 0);
    assert_eq!(footprint(&env, world.colleague).await.contacts, 1 + 3);
}

async fn g5_refuses_reassigning_to_a_deactivated_user(backend: Backend) {
    let job = |world: &World| DeactivateSalesperson {
        reassign_contacts_to: Some(world.deactivated_user),
        ..deactivation(world, Actor::User(world.admin))
    };
    refused_with_nothing_changed(backend, Options::default(), job, "not active").await;
}

async fn refused_with_nothing_changed(
    backend: Backend,
    options: Options,
    job: impl FnOnce(&World) -> DeactivateSalesperson,
    reason: &str,
) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, options).await;
    let before = (
        footprint(&env, world.ana).await,
        footprint(&env, world.colleague).await,
    );
    let record = env.run_job(request(&job(&world))).await;
    assert_refused_with(&record, reason);
    let after = (
        footprint(&env, world.ana).await,
        footprint(&env, world.colleague).await,
    );
    assert_eq!(after, before, "nothing changed");
    assert!(audit_rows(&env, record.id).await.is_empty());
    let mut tx = env.tx().await;
    assert_eq!(license(&mut tx, world.ana_license).await.state, "active");
    tx.commit().await.unwrap();
}

fn assert_refused_with(record: &lifecycle::store::ledger::JobRecord, reason: &str) {
    assert_eq!(record.state, "dead", "a refusal is permanent");
    assert_eq!(record.attempts, 1, "a refusal is never retried");
    let error = record.last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains(reason),
        "{error:?} should contain {reason:?}"
    );
}

async fn g3_refuses_the_last_license_of_a_country_with_phone_numbers(backend: Backend) {
    assert_eq!(
        LAST_LICENSE_WITH_PHONES,
        "You must deactivate the phone numbers for this license's country before removing the last license in the country."
    );
    let options = Options {
        colleague_has_license: false,
        ..Options::default()
    };
    let job = |world: &World| deactivation(world, Actor::User(world.admin));
    refused_with_nothing_changed(backend, options, job, LAST_LICENSE_WITH_PHONES).await;
}

async fn g3_allows_the_last_license_without_phone_numbers(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(
        &env,
        Options {
            colleague_has_license: false,
            spanish_phone: false,
            ..Options::default()
        },
    )
    .await;
    let record = env
        .run_job(request(&deactivation(&world, Actor::User(world.admin))))
        .await;
    assert_eq!(record.state, "done", "{:?}", record.last_error);
}

async fn g4_refuses_an_actor_of_another_account(backend: Backend) {
    let job = |world: &World| deactivation(world, Actor::User(world.other_account_admin));
    refused_with_nothing_changed(
        backend,
        Options::default(),
        job,
        "does not belong to account",
    )
    .await;
}

async fn g4_refuses_an_actor_who_may_not_manage_users(backend: Backend) {
    let job = |world: &World| deactivation(world, Actor::User(world.rep_without_rights));
    refused_with_nothing_changed(
        backend,
        Options::default(),
        job,
        "not allowed to manage users",
    )
    .await;
}

async fn g1_refuses_deactivating_a_higher_ranked_user(backend: Backend) {
    // The junior admin (rank 5) may manage users, but Ana is a manager (rank 50).
    let job = |world: &World| deactivation(world, Actor::User(world.manager));
    refused_with_nothing_changed(backend, Options::default(), job, "ranks higher").await;
}

async fn a_replay_changes_nothing(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, Options::default()).await;
    let record = env
        .run_job(request(&deactivation(&world, Actor::User(world.admin))))
        .await;
    assert_eq!(record.state, "done", "{:?}", record.last_error);
    let audit_before = audit_rows(&env, record.id).await.len();

    // Ana gets new work after the deactivation; the same job delivered again must not
    // touch it.
    let mut tx = env.tx().await;
    let new_task = crm_data::task(
        &mut tx,
        world.account,
        Some(world.ana),
        "new",
        "created",
        env.clock.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    assert!(env.app.queue.retry_now(record.id).await.unwrap());
    let replayed = env.wait_for(record.id).await;
    assert_eq!(replayed.state, "done");
    assert_eq!(replayed.attempts, 2, "it really ran again");
    assert_eq!(task(&env, new_task).await.assignee_id, Some(world.ana));
    assert_eq!(audit_rows(&env, record.id).await.len(), audit_before);
    let (release_jobs,): (i64,) = query_one(
        &env,
        "SELECT COUNT(*) FROM jobs WHERE kind = 'license::release' AND $1 = $1",
        0,
    )
    .await;
    assert_eq!(release_jobs, 1, "the seat release is scheduled once");
}

async fn the_same_idempotency_key_enqueues_once(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, Options::default()).await;
    let job = deactivation(&world, Actor::System);
    let first = env
        .enqueue(EnqueueRequest::for_job(&job, Some("crm-req-1".into())).unwrap())
        .await;
    let second = env
        .enqueue(EnqueueRequest::for_job(&job, Some("crm-req-1".into())).unwrap())
        .await;
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(first.id, second.id);
    let (jobs,): (i64,) = query_one(&env, "SELECT COUNT(*) FROM jobs WHERE $1 = $1", 0).await;
    assert_eq!(jobs, 1);
}

/// Requests that arrive together are recorded together (one statement on PostgreSQL): a
/// key shared by several of them, or repeated inside one batch, still gives one job.
async fn concurrent_requests_with_one_key_enqueue_once(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, Options::default()).await;
    let job = deactivation(&world, Actor::System);
    let request = |key: &str| EnqueueRequest::for_job(&job, Some(key.into())).unwrap();
    let shared = futures_util::future::join_all((0..20).map(|_| env.enqueue(request("crm-same"))));
    let distinct =
        futures_util::future::join_all((0..20).map(|n| env.enqueue(request(&format!("crm-{n}")))));
    let (shared, distinct) = tokio::join!(shared, distinct);
    assert_eq!(shared.iter().filter(|e| e.created).count(), 1, "{shared:?}");
    assert!(shared.iter().all(|e| e.id == shared[0].id), "{shared:?}");
    assert!(distinct.iter().all(|e| e.created), "{distinct:?}");
    let batch = env
        .app
        .queue
        .enqueue_batch(vec![
            request("crm-batch"),
            request("crm-batch"),
            request("crm-same"),
        ])
        .await
        .unwrap();
    assert!(
        batch[0].created && !batch[1].created && !batch[2].created,
        "{batch:?}"
    );
    assert_eq!(batch[0].id, batch[1].id);
    assert_eq!(batch[2].id, shared[0].id);
    let (jobs,): (i64,) = query_one(&env, "SELECT COUNT(*) FROM jobs WHERE $1 = $1", 0).await;
    assert_eq!(jobs, 1 + 20 + 1);
}

async fn a_malformed_payload_fails_permanently_with_the_field(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let record = env
        .run_job(EnqueueRequest {
            kind: DeactivateSalesperson::NAME,
            account_id: None,
            payload: r#"{"account_id": 1, "actor": "system"}"#.into(),
            idempotency_key: None,
            run_at_ms: None,
        })
        .await;
    assert_refused_with(&record, "user_id");
    let record = env
        .run_job(EnqueueRequest {
            kind: DeactivateSalesperson::NAME,
            account_id: None,
            payload: "{{{ not json".into(),
            idempotency_key: None,
            run_at_ms: None,
        })
        .await;
    assert_refused_with(&record, "invalid payload");
}

async fn an_unknown_user_fails_permanently(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, Options::default()).await;
    let mut job = deactivation(&world, Actor::User(world.admin));
    job.user_id = 999_999;
    let record = env.run_job(request(&job)).await;
    assert_refused_with(&record, "user 999999 does not exist");
    // A user of another account is as unknown as one that does not exist.
    let mut job = deactivation(&world, Actor::User(world.admin));
    job.user_id = world.other_account_admin;
    let record = env.run_job(request(&job)).await;
    assert_refused_with(&record, "does not exist in account");
    assert_eq!(DeactivateSalesperson::NAME, "user::deactivate_salesperson");
}

on_both_backends!(
    happy_path_applies_every_effect,
    release_license_fires_at_the_instant_and_only_once,
    contacts_kept_by_account_policy,
    contacts_moved_to_reassign_to,
    g5_refuses_reassigning_to_a_deactivated_user,
    g3_refuses_the_last_license_of_a_country_with_phone_numbers,
    g3_allows_the_last_license_without_phone_numbers,
    g4_refuses_an_actor_of_another_account,
    g4_refuses_an_actor_who_may_not_manage_users,
    g1_refuses_deactivating_a_higher_ranked_user,
    a_replay_changes_nothing,
    the_same_idempotency_key_enqueues_once,
    concurrent_requests_with_one_key_enqueue_once,
    a_malformed_payload_fails_permanently_with_the_field,
    an_unknown_user_fails_permanently,
);
