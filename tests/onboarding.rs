//! New users: CreateUser makes a pending user and emails credentials and a single-use,
//! expiring confirmation link (secrets stored only hashed); ConfirmUser with that link
//! activates them. Through the queue, the real SMTP sink receiving the mail, on both
//! backends.

mod common;

use chrono::Duration;
use common::smtp_sink::ReceivedMessage;
use common::{Backend, TestEnv, World, seed_world};
use lifecycle::demo::crm_data;
use lifecycle::domain::credentials::verify_password;
use lifecycle::store::{audit, emails, ledger, teams, users};
use lifecycle_jobs::{Actor, ConfirmUser, CreateUser, RecordLogin, UserKind, sha256_hex};

fn create(world: &World, first_name: &str, email: &str, language: &str) -> CreateUser {
    CreateUser {
        account_id: world.account,
        actor: Actor::User(world.admin),
        first_name: first_name.into(),
        last_name: "Nueva".into(),
        email: email.into(),
        country: "ES".into(),
        language: language.into(),
        role_id: world.agent_role,
        team_id: world.team,
        copy_permissions_from: None,
        simulator_only: false,
        kind: UserKind::Employee,
    }
}

/// What the credentials email carries, read the way a user reads it.
struct Credentials {
    user_id: i64,
    account_id: i64,
    token: String,
    password: String,
}

fn credentials_in(message: &ReceivedMessage) -> Credentials {
    let text = message.text();
    let link = text
        .split_whitespace()
        .find(|word| word.contains("token="))
        .unwrap_or_else(|| panic!("no confirmation link in:\n{text}"));
    let query = link.split_once('?').expect("a query").1;
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {link}"))
            .to_string()
    };
    // The password line is the one naming it, in any language; its last word is the value.
    let password = text
        .lines()
        .find(|line| {
            let line = line.to_lowercase();
            ["password", "contraseña", "mot de passe", "senha"]
                .iter()
                .any(|word| line.contains(word))
                && line.contains(':')
        })
        .and_then(|line| line.split_whitespace().last())
        .unwrap_or_else(|| panic!("no password line in:\n{text}"))
        .to_string();
    Credentials {
        user_id: param("user").parse().unwrap(),
        account_id: param("account").parse().unwrap(),
        token: param("token"),
        password,
    }
}

async fn confirm(env: &mut TestEnv, credentials: &Credentials) -> ledger::JobRecord {
    env.run(&ConfirmUser {
        account_id: credentials.account_id,
        user_id: credentials.user_id,
        token: credentials.token.clone(),
    })
    .await
}

async fn create_user_emails_credentials_that_confirm_the_account(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;

    let job = env
        .run(&create(&world, "Lucía", "Lucia.Nueva@Acme.test", "es"))
        .await;
    assert_eq!(job.state, "done", "{job:?}");

    // One message, to her, in Spanish, with a text and an HTML part.
    let mail = env.mail(1).await;
    assert_eq!(mail.len(), 1);
    let message = &mail[0];
    assert!(
        message.to().contains("Lucia.Nueva@Acme.test"),
        "{}",
        message.to()
    );
    assert_eq!(message.header("Content-Language").as_deref(), Some("es"));
    assert!(
        message.subject().contains("bienvenida"),
        "{}",
        message.subject()
    );
    assert!(message.text().contains("Contraseña temporal"));
    assert!(message.html().to_lowercase().starts_with("<!doctype html>"));
    let credentials = credentials_in(message);
    assert_eq!(credentials.account_id, world.account);
    assert!(message.html().contains(&credentials.password));
    assert!(message.html().contains(&credentials.token));

    // The user is pending, must change the temporary password; only hashes are stored.
    let mut tx = env.tx().await;
    let user = users::find(&mut tx, credentials.user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.status, "pending");
    assert_eq!(user.kind, "employee");
    assert_eq!(
        (user.first_name.as_str(), user.language.as_str()),
        ("Lucía", "es")
    );
    assert!(user.must_change_password);
    assert!(!user.simulator_only);
    assert_eq!(user.confirmed_at, None);
    let password_hash: String = stored_password_hash(&env, user.id).await;
    assert!(password_hash.starts_with("$argon2id$"));
    assert!(verify_password(&credentials.password, &password_hash));
    let dump = env.all_rows_as_text().await;
    assert!(
        !dump.contains(&credentials.password),
        "temporary password in clear"
    );
    assert!(!dump.contains(&credentials.token), "link secret in clear");
    assert!(
        dump.contains(&sha256_hex(&credentials.token)),
        "link stored hashed"
    );
    // In the team, audited under the job, the message recorded as sent.
    assert_eq!(
        teams::first_team_leader(&mut tx, user.id).await.unwrap(),
        Some(world.admin),
        "joined the team North, led by Ada"
    );
    let audit_rows = audit::for_job(&mut tx, job.id).await.unwrap();
    let actions: Vec<&str> = audit_rows.iter().map(|row| row.action.as_str()).collect();
    assert_eq!(actions, ["created", "joined_team"]);
    assert!(
        audit_rows
            .iter()
            .all(|row| row.actor == format!("user:{}", world.admin))
    );
    let sent = emails::for_user(&mut tx, user.id).await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].template.as_str(), sent[0].state.as_str()),
        ("credentials", "sent")
    );
    tx.rollback().await.unwrap();

    // The link confirms her: active, confirmed now, the idle clock started.
    let confirmed = confirm(&mut env, &credentials).await;
    assert_eq!(confirmed.state, "done", "{confirmed:?}");
    let mut tx = env.tx().await;
    let user = users::find(&mut tx, credentials.user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.status, "active");
    assert_eq!(user.confirmed_at, Some(env.clock.now()));
    assert_eq!(user.last_activity_at, Some(env.clock.now()));
    tx.rollback().await.unwrap();

    // Single use: the same link again is refused, permanently, saying why.
    let reused = confirm(&mut env, &credentials).await;
    assert_eq!(reused.state, "dead");
    assert_eq!(reused.attempts, 1);
    let error = reused.last_error.unwrap();
    assert!(error.contains("already used"), "{error}");
}

async fn stored_password_hash(env: &TestEnv, user_id: i64) -> String {
    use lifecycle::store::Store;
    match env.store() {
        Store::Postgres(pool) => {
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_one(pool)
                .await
        }
        Store::Sqlite(pool) => {
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_one(pool)
                .await
        }
    }
    .expect("password hash")
}

async fn confirmation_link_expires_after_its_time(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    env.run(&create(&world, "Early", "early@acme.test", "en"))
        .await;
    env.run(&create(&world, "Late", "late@acme.test", "en"))
        .await;
    let mail = env.mail(2).await;
    let early = credentials_in(&mail[0]);
    let late = credentials_in(&mail[1]);
    assert!(mail[0].text().contains(&format!(
        "{} UTC",
        (env.clock.now() + Duration::hours(72)).format("%Y-%m-%d %H:%M")
    )));

    // 72 hours (the default) less a second: still valid.
    env.clock
        .advance(Duration::hours(72) - Duration::seconds(1));
    assert_eq!(confirm(&mut env, &early).await.state, "done");
    // At 72 hours: expired, refused with the instant, the user left pending.
    env.clock.advance(Duration::seconds(1));
    let expired = confirm(&mut env, &late).await;
    assert_eq!(expired.state, "dead");
    assert!(expired.last_error.unwrap().contains("expired"));
    let mut tx = env.tx().await;
    let user = users::find(&mut tx, late.user_id).await.unwrap().unwrap();
    assert_eq!(user.status, "pending");
}

async fn a_wrong_or_foreign_token_confirms_nobody(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    env.run(&create(&world, "Ana", "ana@acme.test", "en")).await;
    env.run(&create(&world, "Bea", "bea@acme.test", "en")).await;
    let mail = env.mail(2).await;
    let ana = credentials_in(&mail[0]);
    let bea = credentials_in(&mail[1]);

    let guessed = Credentials {
        token: "0".repeat(64),
        ..credentials_in(&mail[0])
    };
    let wrong = confirm(&mut env, &guessed).await;
    assert_eq!(wrong.state, "dead");
    assert!(wrong.last_error.unwrap().contains("not valid"));
    // Bea's secret does not confirm Ana.
    let crossed = Credentials {
        token: bea.token.clone(),
        ..credentials_in(&mail[0])
    };
    assert_eq!(confirm(&mut env, &crossed).await.state, "dead");
    let mut tx = env.tx().await;
    for id in [ana.user_id, bea.user_id] {
        assert_eq!(
            users::find(&mut tx, id).await.unwrap().unwrap().status,
            "pending"
        );
    }
}

async fn permissions_are_copied_and_simulator_only_kept(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let model = common::seed_agent(&env, &world, "Model", "en").await;
    let mut tx = env.tx().await;
    crm_data::permission_override(&mut tx, model, "offers.create", true)
        .await
        .unwrap();
    crm_data::permission_override(&mut tx, model, "reports.view", false)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut job = create(&world, "Sim", "sim@acme.test", "pt");
    job.copy_permissions_from = Some(model);
    job.simulator_only = true;
    assert_eq!(env.run(&job).await.state, "done");
    let mut tx = env.tx().await;
    let user = users::find_by_email(&mut tx, world.account, "sim@acme.test")
        .await
        .unwrap()
        .unwrap();
    assert!(user.simulator_only);
    assert_eq!(
        users::permission_overrides(&mut tx, user.id).await.unwrap(),
        vec![
            ("offers.create".to_string(), true),
            ("reports.view".to_string(), false)
        ]
    );
    tx.rollback().await.unwrap();
    // Portuguese mail for a Portuguese speaker.
    let mail = env.mail(1).await;
    assert_eq!(mail[0].header("Content-Language").as_deref(), Some("pt"));
}

/// Each refusal: dead after one attempt, the reason saying why, no user, no mail.
async fn refused_creations_change_nothing_and_say_why(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let now = env.clock.now();
    let gone = common::seed_agent(&env, &world, "Gone", "en").await;
    let mut tx = env.tx().await;
    let eve = common::admin_of_another_account(&mut tx, now).await;
    let other = users::find(&mut tx, eve).await.unwrap().unwrap().account_id;
    let other_role = crm_data::role(&mut tx, other, "Agent", 10, false)
        .await
        .unwrap();
    let other_team = crm_data::team(&mut tx, other, "South", eve, now)
        .await
        .unwrap();
    let clerk_role = crm_data::role(&mut tx, world.account, "Clerk", 5, false)
        .await
        .unwrap();
    let clerk = crm_data::user(
        &mut tx,
        &crm_data::NewUser {
            account_id: world.account,
            role_id: clerk_role,
            first_name: "Carl",
            last_name: "Clerk",
            email: "carl@acme.test",
            country: "ES",
            status: "active",
        },
        now,
    )
    .await
    .unwrap();
    let owner_role = crm_data::role(&mut tx, world.account, "Owner", 500, true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = env.tx().await;
    let stamp = lifecycle::store::audit::AuditStamp {
        account_id: world.account,
        actor: "system".into(),
        job_id: uuid::Uuid::now_v7(),
        at: now,
    };
    users::block_email(&mut tx, &stamp, "Blocked@Acme.test")
        .await
        .unwrap();
    let gone_row = users::find(&mut tx, gone).await.unwrap().unwrap();
    users::mark_deactivated(&mut tx, &stamp, &gone_row)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let cases: Vec<(&str, CreateUser)> = vec![
        (
            "already used by user",
            create(&world, "Dup", "ADA@acme.test", "en"),
        ),
        (
            "blocklist",
            create(&world, "Blk", "blocked@acme.test", "en"),
        ),
        (
            "reactivate that user",
            create(&world, "Gone", "gone@acme.test", "en"),
        ),
        (
            "role",
            CreateUser {
                role_id: other_role,
                ..create(&world, "R", "r@acme.test", "en")
            },
        ),
        (
            "team",
            CreateUser {
                team_id: other_team,
                ..create(&world, "T", "t@acme.test", "en")
            },
        ),
        (
            "copy_permissions_from",
            CreateUser {
                copy_permissions_from: Some(eve),
                ..create(&world, "C", "c@acme.test", "en")
            },
        ),
        (
            "not allowed to manage users",
            CreateUser {
                actor: Actor::User(clerk),
                ..create(&world, "K", "k@acme.test", "en")
            },
        ),
        (
            "does not belong to account",
            CreateUser {
                actor: Actor::User(eve),
                ..create(&world, "E", "e@acme.test", "en")
            },
        ),
        (
            "ranks above their own",
            CreateUser {
                role_id: owner_role,
                ..create(&world, "O", "o@acme.test", "en")
            },
        ),
    ];
    for (reason, job) in cases {
        let record = env.run(&job).await;
        assert_eq!(record.state, "dead", "{reason}: {record:?}");
        assert_eq!(record.attempts, 1, "{reason}: not retried");
        let error = record.last_error.unwrap();
        assert!(error.contains(reason), "expected {reason:?} in {error:?}");
        let mut tx = env.tx().await;
        let created = users::find_by_email(&mut tx, world.account, &job.email)
            .await
            .unwrap();
        let preexisting =
            ["ada@acme.test", "gone@acme.test"].contains(&job.email.to_lowercase().as_str());
        assert_eq!(created.is_some(), preexisting, "{reason}: no user created");
        assert!(audit::for_job(&mut tx, record.id).await.unwrap().is_empty());
    }
    // Give any stray SendEmail a moment: nothing was sent.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(env.sink.count(), 0);
}

async fn user_values_are_escaped_in_html_only(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    let name = "<b>Zoë</b> & \"Co\"";
    assert_eq!(
        env.run(&create(&world, name, "zoe@acme.test", "fr"))
            .await
            .state,
        "done"
    );
    let mail = env.mail(1).await;
    let html = mail[0].html();
    assert!(html.contains("&lt;b&gt;Zoë&lt;/b&gt; &amp;"), "{html}");
    assert!(!html.contains("<b>Zoë</b>"));
    assert!(mail[0].text().contains(name));
    assert_eq!(mail[0].header("Content-Language").as_deref(), Some("fr"));
}

/// Failures counted while the user was pending do not survive confirmation: it starts a
/// clean count, and one typo afterwards does not lock.
async fn confirmation_starts_a_clean_failed_login_count(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 2).await;
    env.run(&create(&world, "Rui", "rui@acme.test", "pt")).await;
    let credentials = credentials_in(&env.mail(1).await[0]);
    let failure = RecordLogin {
        account_id: world.account,
        user_id: credentials.user_id,
        succeeded: false,
        at: None,
    };
    for _ in 0..6 {
        assert_eq!(env.run(&failure).await.state, "done");
    }
    let failures = "SELECT CAST(failed_logins AS BIGINT) FROM users WHERE id = $1";
    assert_eq!(env.scalar(failures, credentials.user_id).await, 6);
    assert_eq!(confirm(&mut env, &credentials).await.state, "done");
    assert_eq!(env.scalar(failures, credentials.user_id).await, 0);
    assert_eq!(env.run(&failure).await.state, "done");
    let mut tx = env.tx().await;
    let user = users::find(&mut tx, credentials.user_id)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((user.status.as_str(), user.failed_logins), ("active", 1));
}

on_both_backends!(
    confirmation_starts_a_clean_failed_login_count,
    create_user_emails_credentials_that_confirm_the_account,
    confirmation_link_expires_after_its_time,
    a_wrong_or_foreign_token_confirms_nobody,
    permissions_are_copied_and_simulator_only_kept,
    refused_creations_change_nothing_and_say_why,
    user_values_are_escaped_in_html_only,
);
