//! The `lifecycle` binary as an operator runs it: the README's demo on the embedded
//! default, `migrate` on both databases, `enqueue` with good and bad input.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use lifecycle::store::Store;

fn lifecycle(folder: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lifecycle"));
    command
        .current_dir(folder)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("LIFECYCLE_ENV")
        .env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The tables of SPEC section 3, the ledger and its companions.
const TABLES: &[&str] = &[
    "accounts",
    "roles",
    "role_permissions",
    "users",
    "user_warning_markers",
    "user_permission_overrides",
    "account_sweep_exemptions",
    "license_pools",
    "salesperson_licenses",
    "teams",
    "team_memberships",
    "opportunities",
    "contacts",
    "tasks",
    "playbooks",
    "playbook_memberships",
    "phone_numbers",
    "access_tokens",
    "integrations",
    "subscriptions",
    "email_blocklist",
    "audit_log",
    "jobs",
    "job_attempt_errors",
    "applied_jobs",
];

#[test]
fn demo_runs_on_the_embedded_default_with_no_servers() {
    let folder = tempfile::tempdir().unwrap();
    // Point the servers' URLs at closed ports: the embedded default must not need them.
    let output = lifecycle(
        folder.path(),
        &["demo"],
        &[
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("SMTP_URL", "smtp://127.0.0.1:1"),
        ],
    );
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(stdout.contains(": done after 1 attempt(s)"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("salesperson license")
                && line.contains("active")
                && line.ends_with("releasing")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("contacts assigned") && line.ends_with(" 0"))
    );
    assert!(stdout.contains("audit rows written: 8"), "{stdout}");
    assert!(
        folder.path().join("var/lifecycle.db").exists(),
        "the SQLite file under ./var/"
    );
}

#[tokio::test]
async fn migrate_creates_the_whole_model_on_sqlite() {
    let folder = tempfile::tempdir().unwrap();
    let output = lifecycle(folder.path(), &["migrate"], &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let url = format!(
        "sqlite:{}",
        folder.path().join("var/lifecycle.db").display()
    );
    let Store::Sqlite(pool) = Store::connect(&url, 1).await.unwrap() else {
        unreachable!()
    };
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let tables: Vec<String> = tables.into_iter().map(|(name,)| name).collect();
    for table in TABLES {
        assert!(
            tables.contains(&table.to_string()),
            "missing {table} in {tables:?}"
        );
    }
}

#[tokio::test]
async fn migrate_creates_the_whole_model_on_postgres() {
    let database = common::empty_postgres_database().await;
    let folder = tempfile::tempdir().unwrap();
    let output = lifecycle(
        folder.path(),
        &["migrate"],
        &[("DATABASE_URL", &database.url)],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let Store::Postgres(pool) = Store::connect(&database.url, 1).await.unwrap() else {
        unreachable!()
    };
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let tables: Vec<String> = tables.into_iter().map(|(name,)| name).collect();
    for table in TABLES {
        assert!(
            tables.contains(&table.to_string()),
            "missing {table} in {tables:?}"
        );
    }
    // The rules the schema itself holds.
    let indexes: Vec<(String,)> =
        sqlx::query_as("SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let indexes: Vec<String> = indexes.into_iter().map(|(name,)| name).collect();
    for index in [
        "users_account_email",
        "salesperson_licenses_one_live",
        "users_status_last_login",
        "users_password_changed_at",
        "salesperson_licenses_due",
    ] {
        assert!(
            indexes.contains(&index.to_string()),
            "missing index {index}"
        );
    }
    pool.close().await;
}

#[test]
fn enqueue_prints_the_job_id_and_refuses_bad_input_clearly() {
    let folder = tempfile::tempdir().unwrap();
    let enqueue_with_key = [
        "enqueue",
        "deactivate-salesperson",
        "--account",
        "1",
        "--user",
        "2",
        "--actor",
        "system",
        "--idempotency-key",
        "k-1",
    ];
    let output = lifecycle(folder.path(), &enqueue_with_key, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let id = text(&output.stdout).trim().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id:?}");

    let again = lifecycle(folder.path(), &enqueue_with_key, &[]);
    assert_eq!(text(&again.stdout).trim(), id, "same key, same job");

    let show = lifecycle(folder.path(), &["jobs", "show", &id], &[]);
    assert!(
        text(&show.stdout).contains("state:       queued"),
        "{}",
        text(&show.stdout)
    );

    let bad_actor = lifecycle(
        folder.path(),
        &[
            "enqueue",
            "deactivate-salesperson",
            "--account",
            "1",
            "--user",
            "2",
            "--actor",
            "root",
        ],
        &[],
    );
    assert!(!bad_actor.status.success());
    let stderr = text(&bad_actor.stderr);
    assert!(stderr.contains("invalid actor"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let bad_user = lifecycle(
        folder.path(),
        &[
            "enqueue",
            "deactivate-salesperson",
            "--account",
            "1",
            "--user",
            "0",
            "--actor",
            "system",
        ],
        &[],
    );
    assert!(!bad_user.status.success());
    assert!(
        text(&bad_user.stderr).contains("invalid user_id"),
        "{}",
        text(&bad_user.stderr)
    );
}

#[test]
fn enqueue_deactivate_user_and_reassign_records() {
    let folder = tempfile::tempdir().unwrap();
    let output = lifecycle(
        folder.path(),
        &[
            "enqueue",
            "deactivate-user",
            "--account",
            "1",
            "--user",
            "2",
            "--actor",
            "7",
            "--reassign-to",
            "3",
            "--allow-reactivation-on-purchase",
        ],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let id = text(&output.stdout).trim().to_string();
    let show = text(&lifecycle(folder.path(), &["jobs", "show", &id], &[]).stdout);
    assert!(show.contains("kind:        user::deactivate"), "{show}");
    assert!(show.contains("\"reassign_to\":3"), "{show}");
    assert!(
        show.contains("\"allow_reactivation_on_purchase\":true"),
        "{show}"
    );

    let output = lifecycle(
        folder.path(),
        &[
            "enqueue",
            "reassign-records",
            "--account",
            "1",
            "--from",
            "2",
            "--to",
            "3",
            "--actor",
            "system",
        ],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));

    let same_user = lifecycle(
        folder.path(),
        &[
            "enqueue",
            "reassign-records",
            "--account",
            "1",
            "--from",
            "2",
            "--to",
            "2",
            "--actor",
            "system",
        ],
        &[],
    );
    assert!(!same_user.status.success());
    assert!(
        text(&same_user.stderr).contains("invalid to_user_id"),
        "{}",
        text(&same_user.stderr)
    );
    let missing = lifecycle(
        folder.path(),
        &["enqueue", "deactivate-user", "--account", "1"],
        &[],
    );
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("--user"),
        "{}",
        text(&missing.stderr)
    );
}

/// Every kind is reachable from the CLI as JSON, validated and sealed as over HTTP.
#[test]
fn enqueue_any_kind_as_json() {
    let folder = tempfile::tempdir().unwrap();
    let payload = r#"{"account_id":1,"actor":"system","first_name":"Ana","last_name":"Ruiz",
        "email":"ana@acme.test","country":"ES","language":"es","role_id":2,"team_id":3}"#;
    let output = lifecycle(
        folder.path(),
        &["enqueue", "json", "create-user", payload],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let id = text(&output.stdout).trim().to_string();
    let show = text(&lifecycle(folder.path(), &["jobs", "show", &id], &[]).stdout);
    assert!(show.contains("kind:        user::create"), "{show}");

    // The confirmation secret is recorded as its digest only.
    let secret = "f".repeat(64);
    let confirm = format!(r#"{{"account_id":1,"user_id":5,"token":"{secret}"}}"#);
    let output = lifecycle(
        folder.path(),
        &["enqueue", "json", "confirm-user", &confirm],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let id = text(&output.stdout).trim().to_string();
    let show = text(&lifecycle(folder.path(), &["jobs", "show", &id], &[]).stdout);
    assert!(show.contains("sha256:"), "{show}");
    assert!(!show.contains(&secret), "{show}");

    for (kind, payload, field) in [
        (
            "create-user",
            payload.replace("\"ES\"", "\"XX\""),
            "invalid country",
        ),
        (
            "create-user",
            payload.replace("ana@acme.test", "ana at acme"),
            "invalid email",
        ),
        (
            "create-user",
            payload.replace("\"es\"", "\"de\""),
            "invalid language",
        ),
        ("launch-rockets", "{}".to_string(), "invalid kind"),
        (
            "activate-salesperson",
            "{not json".to_string(),
            "invalid payload",
        ),
    ] {
        let output = lifecycle(folder.path(), &["enqueue", "json", kind, &payload], &[]);
        assert!(!output.status.success(), "{kind} {payload}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(field), "{field}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A key used again says so (stdout still the job id, for scripts); a key holding another
/// job is refused, non-zero, naming that job.
#[test]
fn enqueue_says_when_a_key_was_already_used_and_refuses_a_conflict() {
    let folder = tempfile::tempdir().unwrap();
    let enqueue = |user: &str| {
        lifecycle(
            folder.path(),
            &[
                "enqueue",
                "deactivate-salesperson",
                "--account",
                "1",
                "--user",
                user,
                "--actor",
                "system",
                "--idempotency-key",
                "crm-42",
            ],
            &[],
        )
    };
    let first = enqueue("2");
    assert!(first.status.success(), "{}", text(&first.stderr));
    let id = text(&first.stdout).trim().to_string();
    assert!(!text(&first.stderr).contains("already used"));

    let again = enqueue("2");
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout).trim(), id);
    assert!(
        text(&again.stderr).contains(&format!(
            "idempotency key crm-42 already used: job {id}, not enqueued again"
        )),
        "{}",
        text(&again.stderr)
    );

    let conflict = enqueue("3");
    assert!(!conflict.status.success());
    assert!(text(&conflict.stdout).trim().is_empty());
    let stderr = text(&conflict.stderr);
    assert!(
        stderr.contains("idempotency key crm-42 already used by job") && stderr.contains(&id),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Another account's key is another key.
    let other_account = lifecycle(
        folder.path(),
        &[
            "enqueue",
            "deactivate-salesperson",
            "--account",
            "2",
            "--user",
            "3",
            "--actor",
            "system",
            "--idempotency-key",
            "crm-42",
        ],
        &[],
    );
    assert!(
        other_account.status.success(),
        "{}",
        text(&other_account.stderr)
    );
    assert_ne!(text(&other_account.stdout).trim(), id);
}

/// `token new` prints a fresh token once and the `[[http.tokens]]` entry with its digest,
/// which the service then accepts with that scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_new_prints_a_token_and_its_hashed_entry() {
    let folder = tempfile::tempdir().unwrap();
    let output = lifecycle(folder.path(), &["token", "new", "--name", "web-app"], &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let token = stdout
        .split_whitespace()
        .find(|word| word.starts_with("lc_"))
        .expect("the token")
        .to_string();
    assert_eq!(token.len(), 3 + 64);
    let digest = lifecycle_jobs::sha256_hex(&token);
    assert!(stdout.contains("[[http.tokens]]"), "{stdout}");
    assert!(stdout.contains("name = \"web-app\""), "{stdout}");
    assert!(
        stdout.contains(&format!("sha256 = \"{digest}\"")),
        "{stdout}"
    );
    assert_eq!(stdout.matches(&token).count(), 1, "the token is shown once");
    let second =
        text(&lifecycle(folder.path(), &["token", "new", "--name", "web-app"], &[]).stdout);
    assert!(!second.contains(&token), "every token is new");

    // The printed entry, with a scope added, is a configuration the service loads.
    let entry = &stdout[stdout.find("[[http.tokens]]").unwrap()..];
    let config = folder.path().join("tokens.toml");
    std::fs::write(
        &config,
        entry.replace("kinds = []", "kinds = [\"record-activity\"]"),
    )
    .unwrap();
    let settings = lifecycle::config::Settings::load(Some(&config)).unwrap();
    let tokens = lifecycle::http::api::ApiTokens::from_settings(&settings.http);
    let scope = tokens.scope_of(&token).expect("the service accepts it");
    assert_eq!(scope.name, "web-app");
    assert!(scope.may_enqueue("user::record_activity").is_ok());
    assert!(scope.may_act_as_system().is_err());

    let bad = lifecycle(folder.path(), &["token", "new", "--name", "a b"], &[]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("invalid --name"),
        "{}",
        text(&bad.stderr)
    );
}

/// `admin add-operator` reads the password from stdin and prints the `[[admin.operators]]`
/// entry holding only its argon2id hash, which the service loads; bad arguments and bad
/// entries are refused by name.
#[test]
fn admin_add_operator_prints_an_entry_holding_only_the_hash() {
    use std::io::Write;
    let folder = tempfile::tempdir().unwrap();
    let add = |args: &[&str], password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lifecycle"))
            .current_dir(folder.path())
            .args(["admin", "add-operator"])
            .args(args)
            .env_remove("LIFECYCLE_ENV")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let password = "a long enough secret";
    let output = add(&["--name", "ana", "--role", "viewer"], password);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(!stdout.contains(password), "the password is not printed");
    let config = folder.path().join("operators.toml");
    std::fs::write(&config, &stdout).unwrap();
    let settings = lifecycle::config::Settings::load(Some(&config)).unwrap();
    let operator = settings.admin.operator("ana").expect("the entry loads");
    assert_eq!(operator.role, lifecycle::domain::admin::Role::Viewer);
    assert!(lifecycle::domain::credentials::verify_password(
        password,
        &operator.password_hash
    ));

    for (args, password, says) in [
        (
            ["--name", "ana", "--role", "admin"],
            password,
            "invalid --role",
        ),
        (
            ["--name", "a b", "--role", "operator"],
            password,
            "invalid --name",
        ),
        (
            ["--name", "ana", "--role", "operator"],
            "short",
            "at least 12",
        ),
    ] {
        let output = add(&args, password);
        // A usage error: exit 2, as the README's exit-code policy says.
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            text(&output.stderr).contains(says),
            "{}",
            text(&output.stderr)
        );
    }

    std::fs::write(
        &config,
        "[[admin.operators]]\nname = \"ana\"\nrole = \"operator\"\npassword_hash = \"hunter2\"\n",
    )
    .unwrap();
    let refused = lifecycle::config::Settings::load(Some(&config)).unwrap_err();
    assert!(
        refused.to_string().contains("admin.operators \"ana\""),
        "{refused}"
    );
}
