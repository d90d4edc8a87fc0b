//! The HTML part of the sweep emails as the SMTP server received it: the idle-lock warning,
//! the idle lock notice, the password expiry warning and the expiry notice each state the
//! exact date and time in the account's zone (Madrid, CEST in June and July), are in the
//! user's language (Spanish, French), and escape what the user's name holds (`<b>`). Both
//! backends.

mod common;

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use common::smtp_sink::ReceivedMessage;
use common::sweeps::*;
use common::{Backend, TestEnv, World, seed_world, start_time};
use lifecycle::demo::crm_data;

/// An active agent named `first_name` (markup and all) at `email`, speaking `language`.
async fn agent(env: &TestEnv, world: &World, first_name: &str, email: &str, language: &str) -> i64 {
    let mut tx = env.tx().await;
    let user = crm_data::user(
        &mut tx,
        &crm_data::NewUser {
            account_id: world.account,
            role_id: world.agent_role,
            first_name,
            last_name: "Agent",
            email,
            country: "ES",
            status: "active",
        },
        env.clock.now(),
    )
    .await
    .unwrap();
    crm_data::user_language(&mut tx, user, language)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    user
}

/// The `n`th message (from 1) the sink received for `address`, once it has arrived.
async fn nth_message_to(env: &TestEnv, address: &str, n: usize) -> ReceivedMessage {
    let deadline = Instant::now() + StdDuration::from_secs(30);
    loop {
        let mut messages = env.sink.messages_to(address);
        if messages.len() >= n {
            return messages.swap_remove(n - 1);
        }
        assert!(
            Instant::now() < deadline,
            "{address}: {} of {n} messages",
            messages.len()
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

/// The HTML part says `phrases` (its language's words and the instant), in `lang`, and
/// shows the name `<b>Name</b>` escaped, never as markup.
fn assert_html(message: &ReceivedMessage, lang: &str, name: &str, phrases: &[&str]) {
    let html = message.html();
    assert!(html.contains(&format!("<html lang=\"{lang}\">")), "{html}");
    for phrase in phrases {
        assert!(html.contains(phrase), "{phrase:?} missing: {html}");
    }
    assert!(
        html.contains(&format!("&lt;b&gt;{name}")),
        "the name escaped: {html}"
    );
    assert!(!html.contains("<b>"), "no markup from the name: {html}");
}

async fn the_html_part_states_the_instant_in_the_users_language(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let world = seed_world(&env, 1).await;
    account_time_zone(&env, world.account, "Europe/Madrid").await;
    let t0 = start_time();
    let bea = agent(&env, &world, "<b>Bea</b>", "bea@acme.test", "es").await;
    let zoe = agent(&env, &world, "<b>Zoé</b>", "zoe@acme.test", "fr").await;
    last_active(&env, &[bea], t0).await;
    // Zoé stays active past her password's expiry: her idle deadline is t0 + 150 days.
    last_active(&env, &[zoe, world.admin], t0 + Duration::days(60)).await;
    active_agents(&env, &world, "f", 5, t0 + Duration::days(60)).await;

    // Bea: idle since t0, locked at t0 + 90 days, 2026-06-08 12:00 UTC, 14:00 in Madrid.
    lock_idle_at(&mut env, t0 + Duration::days(76)).await;
    assert_eq!(emails(&env, bea, "idle_lock_warning").await, 1);
    let warning = nth_message_to(&env, "bea@acme.test", 1).await;
    assert_html(
        &warning,
        "es",
        "Bea",
        &[
            "Su cuenta se bloqueará pronto",
            "<strong>2026-06-08 14:00 CEST</strong>",
            "dentro de 14 días",
        ],
    );
    lock_idle_at(&mut env, t0 + Duration::days(90)).await;
    assert_eq!(emails(&env, bea, "locked_idle").await, 1);
    let notice = nth_message_to(&env, "bea@acme.test", 2).await;
    assert_html(
        &notice,
        "es",
        "Bea",
        &[
            "Se ha bloqueado su cuenta por inactividad",
            "<strong>2026-06-08 14:00 CEST</strong>",
        ],
    );

    // Zoé: her password (set at t0) expires at t0 + 120 days, 2026-07-08 14:00 in Madrid.
    expire_passwords_at(&mut env, t0 + Duration::days(113)).await;
    assert_eq!(emails(&env, zoe, "password_expiry_warning").await, 1);
    let warning = nth_message_to(&env, "zoe@acme.test", 1).await;
    assert_html(
        &warning,
        "fr",
        "Zoé",
        &[
            "Votre mot de passe va bientôt expirer",
            "<strong>2026-07-08 14:00 CEST</strong>",
            "dans 7 jours",
        ],
    );
    expire_passwords_at(&mut env, t0 + Duration::days(120)).await;
    assert_eq!(emails(&env, zoe, "password_expired").await, 1);
    let notice = nth_message_to(&env, "zoe@acme.test", 2).await;
    assert_html(
        &notice,
        "fr",
        "Zoé",
        &["Votre mot de passe a expiré", "Bonjour &lt;b&gt;Zoé"],
    );
}

on_both_backends!(the_html_part_states_the_instant_in_the_users_language);
