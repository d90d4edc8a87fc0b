//! Handlers called directly, without a queue or a worker: a job's effects applied in its
//! job transaction, and what they cause (the follow-up jobs) read off it before anything
//! commits. The through-the-queue scenarios stay the proof of the whole path; these make
//! the rule about what a job records plain to see.

mod common;

use common::{Backend, TestEnv, seed_agent, seed_world};
use lifecycle::demo::crm_data;
use lifecycle::handlers::{Apply, JobContext, JobTx, Outcome};
use lifecycle_jobs::{Actor, DeactivateSalesperson, Job, RecordLogin, ReleaseLicense, SendEmail};
use uuid::Uuid;

fn context(env: &TestEnv) -> JobContext<'_> {
    JobContext {
        clock: &env.clock,
        settings: &env.app.settings,
        job_id: Uuid::now_v7(),
        enqueued_at: None,
    }
}

async fn begin<J: Apply>(env: &TestEnv, ctx: &JobContext<'_>, job: &J) -> JobTx {
    JobTx::begin(env.store(), ctx.job_id, Apply::subject(job))
        .await
        .unwrap()
        .expect("a job never applied before gets its transaction")
}

/// DeactivateSalesperson records, in its own transaction, the ReleaseLicense that frees
/// the seat at the end of the billing cycle (the account is billed on the 1st; the clock
/// says 10 March), keyed to the license and that instant; and nothing of it exists until
/// the transaction commits.
async fn a_deactivation_records_the_seat_release_for_the_cycle_end(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, 3).await;
    let ana = seed_agent(&env, &world, "Ana", "es").await;
    let license = {
        let mut tx = env.tx().await;
        let id = crm_data::license(&mut tx, world.account, ana, "ES", env.clock.now())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        id
    };
    let job = DeactivateSalesperson {
        account_id: world.account,
        user_id: ana,
        actor: Actor::User(world.admin),
        reassign_contacts_to: None,
        requested_at: None,
    };
    let ctx = context(&env);
    let mut tx = begin(&env, &ctx, &job).await;

    assert_eq!(job.apply(&mut tx, &ctx).await.unwrap(), Outcome::Applied);

    let follow_ups = tx.follow_ups().to_vec();
    assert_eq!(follow_ups.len(), 1, "{follow_ups:?}");
    let release = &follow_ups[0];
    assert_eq!(release.kind, ReleaseLicense::NAME);
    assert_eq!(release.account_id, world.account);
    assert_eq!(
        release.run_at,
        Some("2026-04-01T00:00:00Z".parse().unwrap()),
        "freed at the end of the cycle running when the deactivation was asked for"
    );
    let payload: ReleaseLicense = serde_json::from_str(&release.payload).unwrap();
    assert_eq!(payload.license_id, license);
    assert!(
        release.key.contains(&license.to_string()),
        "{}",
        release.key
    );

    drop(tx);
    let state = env
        .scalar(
            "SELECT COUNT(*) FROM salesperson_licenses WHERE id = $1 AND state = 'active'",
            license,
        )
        .await;
    assert_eq!(
        state, 1,
        "a job transaction never committed changed nothing"
    );
}

/// RecordLogin: the failure past the limit locks the user and records the SendEmail of the
/// notice; the failures before it and a success record no follow-up at all.
async fn only_the_locking_failure_records_an_email(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    let ana = seed_agent(&env, &world, "Ana", "es").await;
    let limit = env.app.settings.policy.failed_login_limit as usize;
    let login = |succeeded| RecordLogin {
        account_id: world.account,
        user_id: ana,
        succeeded,
        at: None,
    };

    let success = login(true);
    let ctx = context(&env);
    let mut tx = begin(&env, &ctx, &success).await;
    success.apply(&mut tx, &ctx).await.unwrap();
    assert!(tx.follow_ups().is_empty());
    drop(tx);

    let failure = login(false);
    let mut emails_recorded = Vec::new();
    for _ in 0..=limit {
        let ctx = context(&env);
        let mut tx = begin(&env, &ctx, &failure).await;
        failure.apply(&mut tx, &ctx).await.unwrap();
        emails_recorded.push(tx.follow_ups().len());
        let parts = tx.into_parts();
        parts.tx.commit().await.unwrap();
        if let Some(follow_up) = parts.follow_ups.first() {
            assert_eq!(follow_up.kind, SendEmail::NAME);
            assert_eq!(parts.user_id, Some(ana));
        }
    }
    let mut expected = vec![0; limit];
    expected.push(1);
    assert_eq!(
        emails_recorded,
        expected,
        "failures 1..={limit} record nothing; failure {} locks and records the notice",
        limit + 1
    );
}

on_both_backends!(
    a_deactivation_records_the_seat_release_for_the_cycle_end,
    only_the_locking_failure_records_an_email,
);
