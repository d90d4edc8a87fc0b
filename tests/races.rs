//! Jobs that decide on the same rows, run at the same time: each decision must read rows
//! no other job can change before it commits (SPEC section 4: G3, "user must be active",
//! "a license still `releasing` is reclaimed"). Every scenario runs the racing jobs
//! concurrently (one batch, fetched together by a worker running 8 at once) for many
//! rounds, several pairs per round on distinct users or accounts, and checks the rows
//! after every round: what the jobs' outcomes and audit rows say must be what happened.
//! SQLite serializes writers, so it passes there by construction; PostgreSQL is where
//! these raced.

mod common;

use chrono::Duration;
use common::{Backend, TestEnv, World, request, seed_agent, seed_world};
use lifecycle::demo::crm_data;
use lifecycle::domain::guards::LAST_LICENSE_WITH_PHONES;
use lifecycle::queue::EnqueueRequest;
use lifecycle::store::ledger::{self, JobRecord};
use lifecycle::store::{licenses, users};
use lifecycle_jobs::{
    ActivateSalesperson, Actor, DeactivateSalesperson, DeactivateUser, ReactivateUser,
    ReassignRecords, ReleaseLicense,
};

const ROUNDS: usize = 30;

const ACTIVE_ES_LICENSES: &str = "SELECT COUNT(*) FROM salesperson_licenses
     WHERE account_id = $1 AND country = 'ES' AND state = 'active'";
const ACTIVE_LICENSES_OF_USER: &str =
    "SELECT COUNT(*) FROM salesperson_licenses WHERE user_id = $1 AND state = 'active'";
const RELEASING_LICENSES_OF_USER: &str =
    "SELECT COUNT(*) FROM salesperson_licenses WHERE user_id = $1 AND state = 'releasing'";
const LICENSES_OF_USER: &str = "SELECT COUNT(*) FROM salesperson_licenses WHERE user_id = $1";
const RECLAIMED_ROWS: &str = "SELECT COUNT(*) FROM audit_log
     WHERE entity = 'salesperson_license' AND entity_id = $1 AND action = 'reclaimed'";
const RELEASED_ROWS: &str = "SELECT COUNT(*) FROM audit_log
     WHERE entity = 'salesperson_license' AND entity_id = $1 AND action = 'released'";
const ACTIVATED_ROWS: &str = "SELECT COUNT(*) FROM audit_log
     WHERE entity = 'salesperson_license' AND entity_id = $1 AND action = 'activated'";

async fn start(backend: Backend) -> TestEnv {
    let mut env = TestEnv::start_with(backend, |settings| settings.queue.concurrency = 8).await;
    env.start_worker();
    env
}

/// Enqueues `requests` in one batch (so the worker fetches them together) and waits for
/// each to finish; the records come back in the order of the requests.
async fn run_together(env: &mut TestEnv, requests: Vec<EnqueueRequest>) -> Vec<JobRecord> {
    let enqueued = env.app.queue.enqueue_batch(requests).await.unwrap();
    let mut records = Vec::new();
    for job in &enqueued {
        records.push(env.wait_for(job.id).await);
    }
    records
}

async fn user_status(env: &TestEnv, user_id: i64) -> String {
    let mut tx = env.tx().await;
    let user = users::find(&mut tx, user_id).await.unwrap().unwrap();
    tx.rollback().await.unwrap();
    user.status
}

/// A salesperson deactivation of either kind: both remove the license and apply G3.
#[derive(Clone, Copy, Debug)]
enum Removal {
    Salesperson,
    User,
}

impl Removal {
    fn request(self, world: &World, user_id: i64) -> EnqueueRequest {
        match self {
            Removal::Salesperson => request(&DeactivateSalesperson {
                account_id: world.account,
                user_id,
                actor: Actor::User(world.admin),
                reassign_contacts_to: None,
                requested_at: None,
            }),
            Removal::User => request(&deactivate_user(world, user_id)),
        }
    }
}

fn deactivate_user(world: &World, user_id: i64) -> DeactivateUser {
    DeactivateUser {
        account_id: world.account,
        user_id,
        actor: Actor::User(world.admin),
        reassign_to: None,
        allow_reactivation_on_purchase: false,
        requested_at: None,
    }
}

/// G3 under concurrency: an account has an active Spanish phone number and exactly two
/// active Spanish licenses; two jobs remove one each at the same time. Exactly one may
/// succeed, the other is refused with G3's message and is not retried, every round; the
/// account always keeps one active license in Spain. Both kinds of removal race, in every
/// combination (DeactivateSalesperson twice, DeactivateUser and DeactivateSalesperson,
/// DeactivateUser twice), on their own accounts in the same batch.
async fn racing_removals_of_the_last_two_licenses_with_phones_leave_one(backend: Backend) {
    let mut env = start(backend).await;
    let pairings = [
        (Removal::Salesperson, Removal::Salesperson),
        (Removal::User, Removal::Salesperson),
        (Removal::User, Removal::User),
    ];
    for round in 0..ROUNDS {
        let mut pairs = Vec::new();
        let mut requests = Vec::new();
        for (first, second) in pairings {
            let world = seed_world(&env, 5).await;
            let one = seed_agent(&env, &world, &format!("One{round}"), "es").await;
            let two = seed_agent(&env, &world, &format!("Two{round}"), "es").await;
            let mut tx = env.tx().await;
            let now = env.clock.now();
            for user in [one, two] {
                crm_data::license(&mut tx, world.account, user, "ES", now)
                    .await
                    .unwrap();
            }
            crm_data::phone_number(&mut tx, world.account, "ES", "+34 910 000 001", true)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            requests.push(first.request(&world, one));
            requests.push(second.request(&world, two));
            pairs.push((world, [(first, one), (second, two)]));
        }
        let records = run_together(&mut env, requests).await;

        for ((world, removals), outcomes) in pairs.iter().zip(records.chunks(2)) {
            let context = format!("round {round}, {:?} and {:?}", removals[0].0, removals[1].0);
            let done = outcomes.iter().filter(|job| job.state == "done").count();
            assert_eq!(done, 1, "{context}: exactly one removal wins: {outcomes:?}");
            for ((removal, user), job) in removals.iter().zip(outcomes) {
                match job.state.as_str() {
                    "done" => {
                        assert_eq!(env.scalar(ACTIVE_LICENSES_OF_USER, *user).await, 0);
                        if let Removal::User = removal {
                            assert_eq!(user_status(&env, *user).await, "deactivated");
                        }
                    }
                    "dead" => {
                        assert_eq!(job.attempts, 1, "{context}: a refusal is not retried");
                        assert_eq!(
                            job.last_error.as_deref(),
                            Some(LAST_LICENSE_WITH_PHONES),
                            "{context}"
                        );
                        assert_eq!(env.scalar(ACTIVE_LICENSES_OF_USER, *user).await, 1);
                        assert_eq!(user_status(&env, *user).await, "active", "{context}");
                    }
                    other => panic!("{context}: job ended {other}: {job:?}"),
                }
            }
            assert_eq!(
                env.scalar(ACTIVE_ES_LICENSES, world.account).await,
                1,
                "{context}: the account keeps one active license where its phone is"
            );
        }
    }
}

/// ActivateSalesperson and DeactivateUser of the same user at the same time. Whichever
/// runs first, the user ends deactivated and holds no `active` (billed, seat-taking for
/// good) license: either the activation came first and the deactivation put the license
/// in `releasing`, or the deactivation came first and the activation was refused because
/// the user is no longer active. Four users per round, the two jobs in both orders.
async fn an_activation_racing_a_deactivation_never_leaves_a_deactivated_salesperson(
    backend: Backend,
) {
    let mut env = start(backend).await;
    const USERS: usize = 4;
    for round in 0..ROUNDS {
        let world = seed_world(&env, USERS as i32).await;
        let mut agents = Vec::new();
        let mut requests = Vec::new();
        for n in 0..USERS {
            let agent = seed_agent(&env, &world, &format!("R{round}x{n}"), "en").await;
            let activate = request(&ActivateSalesperson {
                account_id: world.account,
                user_id: agent,
                actor: Actor::User(world.admin),
                country: "ES".into(),
            });
            let deactivate = request(&deactivate_user(&world, agent));
            // Alternate the order in the batch: either may be fetched first.
            if n % 2 == 0 {
                requests.extend([activate, deactivate]);
            } else {
                requests.extend([deactivate, activate]);
            }
            agents.push(agent);
        }
        let records = run_together(&mut env, requests).await;

        for (n, (agent, jobs)) in agents.iter().zip(records.chunks(2)).enumerate() {
            let (activation, deactivation) = if n % 2 == 0 {
                (&jobs[0], &jobs[1])
            } else {
                (&jobs[1], &jobs[0])
            };
            let context = format!("round {round}, user {agent}");
            assert_eq!(deactivation.state, "done", "{context}: {deactivation:?}");
            assert_eq!(user_status(&env, *agent).await, "deactivated", "{context}");
            assert_eq!(
                env.scalar(ACTIVE_LICENSES_OF_USER, *agent).await,
                0,
                "{context}: a deactivated user holds an active license (activation {activation:?})"
            );
            match activation.state.as_str() {
                // It ran first: the deactivation after it put the license in `releasing`.
                "done" => assert_eq!(
                    env.scalar(RELEASING_LICENSES_OF_USER, *agent).await,
                    1,
                    "{context}"
                ),
                "dead" => {
                    assert_eq!(activation.attempts, 1, "{context}: refusals are final");
                    assert!(
                        activation
                            .last_error
                            .as_deref()
                            .unwrap_or_default()
                            .contains("only an active user can be a salesperson"),
                        "{context}: {activation:?}"
                    );
                    assert_eq!(env.scalar(LICENSES_OF_USER, *agent).await, 0, "{context}");
                }
                other => panic!("{context}: activation ended {other}: {activation:?}"),
            }
        }
    }
}

/// ReactivateUser (with `license_country`) of a deactivated salesperson whose license is
/// `releasing`, and the ReleaseLicense job of that license, at `release_at`, at the same
/// time. Whichever wins, the user ends active with one active license in Spain (the seat
/// was free either way), and the audit rows tell the truth: the license was reclaimed
/// (`active`, one "reclaimed" row, no "released" row) or released (`released`, one
/// "released" row, no "reclaimed" row; the user took a free seat: a new license).
async fn a_reclaim_racing_the_release_tells_the_truth(backend: Backend) {
    let mut env = start(backend).await;
    const USERS: usize = 4;
    for round in 0..ROUNDS {
        let world = seed_world(&env, USERS as i32).await;
        let release_at = env.clock.now() + Duration::hours(1);
        let mut held = Vec::new();
        let mut tx = env.tx().await;
        for n in 0..USERS {
            let email = format!("r{round}x{n}@acme.test");
            let user = crm_data::user(
                &mut tx,
                &crm_data::NewUser {
                    account_id: world.account,
                    role_id: world.agent_role,
                    first_name: "Gone",
                    last_name: "Agent",
                    email: &email,
                    country: "ES",
                    status: "deactivated",
                },
                env.clock.now(),
            )
            .await
            .unwrap();
            let license = crm_data::license(&mut tx, world.account, user, "ES", env.clock.now())
                .await
                .unwrap();
            assert!(
                licenses::start_releasing(&mut tx, license, release_at)
                    .await
                    .unwrap()
            );
            held.push((user, license));
        }
        tx.commit().await.unwrap();
        // The instant of the release: both jobs are due now.
        env.clock.set(release_at);

        let mut requests = Vec::new();
        for (n, (user, license)) in held.iter().enumerate() {
            let reactivate = request(&ReactivateUser {
                account_id: world.account,
                user_id: *user,
                actor: Actor::User(world.admin),
                license_country: Some("ES".into()),
            });
            let release = request(&ReleaseLicense {
                account_id: world.account,
                license_id: *license,
            });
            if n % 2 == 0 {
                requests.extend([reactivate, release]);
            } else {
                requests.extend([release, reactivate]);
            }
        }
        let records = run_together(&mut env, requests).await;

        for (n, ((user, license), jobs)) in held.iter().zip(records.chunks(2)).enumerate() {
            let context = format!("round {round}, user {user}, license {license}");
            let (reactivation, release) = if n % 2 == 0 {
                (&jobs[0], &jobs[1])
            } else {
                (&jobs[1], &jobs[0])
            };
            assert_eq!(reactivation.state, "done", "{context}: {reactivation:?}");
            assert_eq!(release.state, "done", "{context}: {release:?}");
            assert_eq!(user_status(&env, *user).await, "active", "{context}");

            let mut tx = env.tx().await;
            let original = licenses::find(&mut tx, *license).await.unwrap().unwrap();
            let live = licenses::live_for_user(&mut tx, *user).await.unwrap();
            tx.rollback().await.unwrap();
            let live = live.unwrap_or_else(|| {
                panic!("{context}: reactivated with a free seat, yet holds no license")
            });
            assert_eq!(
                (live.country.as_str(), live.state.as_str()),
                ("ES", "active"),
                "{context}"
            );
            let reclaimed = env.scalar(RECLAIMED_ROWS, *license).await;
            let released = env.scalar(RELEASED_ROWS, *license).await;
            match original.state.as_str() {
                "active" => {
                    assert_eq!(live.id, *license, "{context}");
                    assert_eq!((reclaimed, released), (1, 0), "{context}: reclaimed");
                }
                "released" => {
                    assert_eq!((reclaimed, released), (0, 1), "{context}: released");
                    assert_ne!(live.id, *license, "{context}");
                    assert_eq!(env.scalar(ACTIVATED_ROWS, live.id).await, 1, "{context}");
                }
                other => panic!("{context}: the license ended {other}"),
            }
        }
    }
}

const RECORDS_HELD: &str = "SELECT
       (SELECT COUNT(*) FROM opportunities WHERE owner_id = $1)
     + (SELECT COUNT(*) FROM contacts WHERE assignee_id = $1)
     + (SELECT COUNT(*) FROM tasks WHERE assignee_id = $1 AND state <> 'completed')";

/// G5 under concurrency: records handed to a user while that user is deactivated. Either
/// the hand-over ran first (the deactivation then moved the records on) or it is refused
/// because the receiver is no longer active; a deactivated user never ends holding records.
async fn records_handed_to_a_user_being_deactivated_never_stay_with_them(backend: Backend) {
    let mut env = start(backend).await;
    const PAIRS: usize = 4;
    for round in 0..ROUNDS {
        let world = seed_world(&env, 1).await;
        let mut pairs = Vec::new();
        let mut requests = Vec::new();
        for n in 0..PAIRS {
            let giver = seed_agent(&env, &world, &format!("G{round}x{n}"), "en").await;
            let receiver = seed_agent(&env, &world, &format!("T{round}x{n}"), "en").await;
            let mut tx = env.tx().await;
            let now = env.clock.now();
            crm_data::opportunity(&mut tx, world.account, giver, "Deal", now)
                .await
                .unwrap();
            crm_data::contact(&mut tx, world.account, Some(giver), "Client", now)
                .await
                .unwrap();
            crm_data::task(&mut tx, world.account, Some(giver), "Call", "created", now)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let reassign = request(&ReassignRecords {
                account_id: world.account,
                from_user_id: giver,
                to_user_id: receiver,
                actor: Actor::User(world.admin),
            });
            let deactivate = request(&deactivate_user(&world, receiver));
            if n % 2 == 0 {
                requests.extend([reassign, deactivate]);
            } else {
                requests.extend([deactivate, reassign]);
            }
            pairs.push((giver, receiver));
        }
        let records = run_together(&mut env, requests).await;
        for (n, ((giver, receiver), jobs)) in pairs.iter().zip(records.chunks(2)).enumerate() {
            let (reassign, deactivation) = if n % 2 == 0 {
                (&jobs[0], &jobs[1])
            } else {
                (&jobs[1], &jobs[0])
            };
            let context = format!("round {round}, {giver} -> {receiver}");
            assert_eq!(deactivation.state, "done", "{context}: {deactivation:?}");
            assert_eq!(
                env.scalar(RECORDS_HELD, *receiver).await,
                0,
                "{context}: a deactivated user holds records (hand-over {reassign:?})"
            );
            match reassign.state.as_str() {
                "done" => assert_eq!(env.scalar(RECORDS_HELD, *giver).await, 0, "{context}"),
                "dead" => {
                    assert_eq!(reassign.attempts, 1, "{context}: refusals are final");
                    assert_eq!(env.scalar(RECORDS_HELD, *giver).await, 3, "{context}");
                }
                other => panic!("{context}: hand-over ended {other}: {reassign:?}"),
            }
        }
    }
}

/// Makes every finished job of the ledger dead, as if each had failed for good.
async fn all_done_jobs_dead(env: &TestEnv) {
    const SQL: &str = "UPDATE jobs SET state = 'dead' WHERE state = 'done'";
    let mut tx = env.tx().await;
    match &mut tx {
        lifecycle::store::Tx::Postgres(tx) => {
            sqlx::query(SQL).execute(&mut **tx).await.unwrap();
        }
        lifecycle::store::Tx::Sqlite(tx) => {
            sqlx::query(SQL).execute(&mut **tx).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

/// An operator's retry pushes its jobs before it commits them queued: a delivery claimed
/// in between waits for the commit and then runs the job (after a rollback it finds the
/// job still dead and leaves it). A claim that skipped the row as dead would lose the job:
/// queued, marked pushed, and never delivered again.
async fn a_delivery_claimed_before_its_retry_commits_waits_for_it(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let enqueued = env
        .app
        .queue
        .enqueue_batch(common::noop_requests(2))
        .await
        .unwrap();
    for job in &enqueued {
        env.wait_for(job.id).await;
    }
    env.stop_worker().await;
    all_done_jobs_dead(&env).await;
    let now_ms = env.clock.now_ms();
    for (job, commit) in enqueued.iter().zip([true, false]) {
        let mut retry = env.tx().await;
        let requeued = ledger::requeue_failed(&mut retry, &[job.id], now_ms, Some(now_ms))
            .await
            .unwrap();
        assert_eq!(requeued.len(), 1);
        let store = env.store().clone();
        let id = job.id;
        let claim = tokio::spawn(async move {
            ledger::claim_delivered(&store, "racing-worker", &[id], now_ms).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if commit {
            retry.commit().await.unwrap();
        } else {
            retry.rollback().await.unwrap();
        }
        let claimed = claim.await.unwrap().unwrap();
        let record = env.job(job.id).await;
        if commit {
            assert_eq!(claimed.len(), 1, "claimed once the retry committed");
            assert_eq!(claimed[0].attempts, 2, "the retry is the second attempt");
            assert_eq!(record.state, "running");
        } else {
            assert!(claimed.is_empty(), "a rolled-back retry runs nothing");
            assert_eq!((record.state.as_str(), record.attempts), ("dead", 1));
        }
    }
}

/// Operators retrying dead jobs while workers read them, round after round: every retried
/// job runs again, once.
async fn retries_racing_the_workers_run_every_job_once(backend: Backend) {
    let mut env = start(backend).await;
    let operator = lifecycle::queue::admin::Operator::new("racer").unwrap();
    let enqueued = env
        .app
        .queue
        .enqueue_batch(common::noop_requests(10))
        .await
        .unwrap();
    let ids: Vec<_> = enqueued.iter().map(|job| job.id).collect();
    for id in &ids {
        env.wait_for(*id).await;
    }
    for round in 1..=ROUNDS {
        all_done_jobs_dead(&env).await;
        // Half retried one by one, half in one call: several pushes racing the reads.
        let (one_by_one, together) = ids.split_at(ids.len() / 2);
        for id in one_by_one {
            let retried = env.app.queue.retry_jobs(&operator, &[*id]).await.unwrap();
            assert_eq!(retried.queued, [*id]);
        }
        let retried = env.app.queue.retry_jobs(&operator, together).await.unwrap();
        assert_eq!(retried.queued.len(), together.len());
        for id in &ids {
            let record = env.wait_for(*id).await;
            assert_eq!(record.state, "done", "round {round}: {record:?}");
            assert_eq!(
                record.attempts,
                1 + round as i32,
                "round {round}: one attempt per retry: {record:?}"
            );
        }
    }
}

on_both_backends!(
    a_delivery_claimed_before_its_retry_commits_waits_for_it,
    retries_racing_the_workers_run_every_job_once,
    records_handed_to_a_user_being_deactivated_never_stay_with_them,
    racing_removals_of_the_last_two_licenses_with_phones_leave_one,
    an_activation_racing_a_deactivation_never_leaves_a_deactivated_salesperson,
    a_reclaim_racing_the_release_tells_the_truth,
);
