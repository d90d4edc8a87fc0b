//! The binary refusing what it cannot work with, as an operator sees it: a typo in the
//! configuration (a file key, a section, a `LIFECYCLE__` variable) is named with the nearest
//! known key; every failure is one line on stderr, without a backtrace even with
//! `RUST_BACKTRACE=1`; an unreachable database or Redis is said at once; `run` migrates
//! nothing until every dependency answered; an unreachable SMTP server only warns.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Backend;
use common::process::Service;
use lifecycle::store::Store;

/// Runs the binary in `folder` with a clean environment for the configuration and
/// `RUST_BACKTRACE=1` (which must not turn a user's error into a backtrace), and waits for
/// it to exit (a minute at most: a start that hangs is a failure too).
fn lifecycle(folder: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lifecycle"));
    command
        .current_dir(folder)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("SMTP_URL")
        .env_remove("LIFECYCLE_ENV")
        .env_remove("LIFECYCLE_CONFIG")
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "warn")
        .env("LIFECYCLE__HTTP__BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the binary runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("lifecycle {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The single line a failure printed, checked: non-zero exit with `code`, exactly one line
/// on stderr, `error: ...`, no backtrace and no cause chain.
fn the_error(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected:\n{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    for noise in ["Caused by", "backtrace", "Backtrace", "panicked"] {
        assert!(!stderr.contains(noise), "{stderr}");
    }
    stderr.trim_end().to_string()
}

fn with_file(contents: &str) -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("lifecycle.toml"), contents).unwrap();
    folder
}

#[test]
fn a_misspelt_key_in_a_file_is_refused_with_the_nearest_key() {
    let folder = with_file("[queue]\nconcurency = 5\n");
    let output = lifecycle(
        folder.path(),
        &["--config", "lifecycle.toml", "migrate"],
        &[],
    );
    let error = the_error(&output, 2);
    assert!(error.contains("unknown key queue.concurency"), "{error}");
    assert!(error.contains("lifecycle.toml"), "{error}");
    assert!(error.contains("did you mean queue.concurrency?"), "{error}");
    assert!(
        !folder.path().join("var").exists(),
        "nothing was created or migrated"
    );
}

#[test]
fn an_unknown_section_is_refused_with_the_nearest_one() {
    let folder = with_file("[queues]\nconcurrency = 5\n");
    let output = lifecycle(
        folder.path(),
        &["--config", "lifecycle.toml", "migrate"],
        &[],
    );
    let error = the_error(&output, 2);
    assert!(error.contains("unknown key queues"), "{error}");
    assert!(error.contains("did you mean queue?"), "{error}");
}

#[test]
fn a_misspelt_variable_is_refused_with_the_nearest_one() {
    let folder = tempfile::tempdir().unwrap();
    let output = lifecycle(
        folder.path(),
        &["migrate"],
        &[("LIFECYCLE__QUEUE__CONCURENCY", "5")],
    );
    let error = the_error(&output, 2);
    assert!(
        error.contains("unknown variable LIFECYCLE__QUEUE__CONCURENCY"),
        "{error}"
    );
    assert!(
        error.contains("did you mean LIFECYCLE__QUEUE__CONCURRENCY?"),
        "{error}"
    );
}

#[test]
fn the_known_variables_and_open_tables_still_work() {
    let folder = with_file(
        "[queue.kinds.\"user::create\"]\nmax_attempts = 3\n\n\
         [[http.tokens]]\nname = \"auth-service\"\n\
         sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n\
         kinds = [\"record-login\"]\n",
    );
    let output = lifecycle(
        folder.path(),
        &["--config", "lifecycle.toml", "migrate"],
        &[
            ("LIFECYCLE__QUEUE__CONCURRENCY", "5"),
            ("LIFECYCLE__HTTP__API_TOKENS", "token-a,123"),
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("SMTP_URL", "smtp://127.0.0.1:1"),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_toml_syntax_error_is_one_line_with_the_file_line_and_column() {
    let folder = with_file("[queue]\nconcurrency = 5\n[mail\n");
    let output = lifecycle(
        folder.path(),
        &["--config", "lifecycle.toml", "migrate"],
        &[],
    );
    let error = the_error(&output, 2);
    assert!(error.contains("lifecycle.toml"), "{error}");
    assert!(error.contains("line 3, column 6"), "{error}");
}

#[test]
fn a_missing_environment_file_is_named_with_its_extension() {
    let folder = tempfile::tempdir().unwrap();
    let output = lifecycle(folder.path(), &["migrate"], &[("LIFECYCLE_ENV", "nosuch")]);
    let error = the_error(&output, 2);
    assert!(error.contains("config/nosuch.toml"), "{error}");
}

#[test]
fn a_closed_postgres_port_is_refused_at_once_without_the_password() {
    let folder = tempfile::tempdir().unwrap();
    let output = lifecycle(
        folder.path(),
        &["migrate"],
        &[("DATABASE_URL", "postgres://app:hunter2@127.0.0.1:1/crm")],
    );
    let error = the_error(&output, 1);
    assert!(
        error.to_lowercase().contains("connection refused"),
        "{error}"
    );
    assert!(
        error.contains("postgres://app:[redacted]@127.0.0.1:1/crm"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
}

#[test]
fn a_closed_redis_port_is_refused_at_once() {
    let folder = tempfile::tempdir().unwrap();
    let output = lifecycle(
        folder.path(),
        &["migrate"],
        &[
            ("LIFECYCLE__QUEUE__BACKEND", "redis"),
            ("REDIS_URL", "redis://:hunter2@127.0.0.1:1"),
        ],
    );
    let error = the_error(&output, 1);
    assert!(error.contains("Redis at redis://"), "{error}");
    assert!(
        error.to_lowercase().contains("connection refused"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
}

#[test]
fn an_sqlite_path_that_cannot_be_opened_is_one_clear_line() {
    // A folder where the database file should be: SQLite cannot open it.
    let folder = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", folder.path().display());
    let output = lifecycle(folder.path(), &["migrate"], &[("DATABASE_URL", &url)]);
    let error = the_error(&output, 1);
    assert!(
        error.contains(&format!("cannot connect to the database at {url}")),
        "{error}"
    );
    assert!(error.contains("unable to open database file"), "{error}");
}

/// The tables in the database at `url`.
async fn tables(url: &str) -> Vec<String> {
    let rows: Vec<(String,)> = match Store::connect(url, 1).await.unwrap() {
        Store::Postgres(pool) => {
            let rows = sqlx::query_as(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            pool.close().await;
            rows
        }
        Store::Sqlite(pool) => {
            let rows = sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&pool)
                .await
                .unwrap();
            pool.close().await;
            rows
        }
    };
    rows.into_iter().map(|(name,)| name).collect()
}

/// `run` pointed at a database and at a Redis that does not answer: it must fail before it
/// changes the database.
async fn run_with_unreachable_redis_migrates_nothing(database_url: &str, folder: &Path) {
    let output = lifecycle(
        folder,
        &["run"],
        &[
            ("DATABASE_URL", database_url),
            ("LIFECYCLE__QUEUE__BACKEND", "redis"),
            ("REDIS_URL", "redis://127.0.0.1:1"),
        ],
    );
    assert_eq!(
        tables(database_url).await,
        Vec::<String>::new(),
        "migrated before checking Redis"
    );
    let error = the_error(&output, 1);
    assert!(error.contains("Redis"), "{error}");
}

#[tokio::test]
async fn run_with_an_unreachable_redis_leaves_postgres_unmigrated() {
    let database = common::empty_postgres_database().await;
    let folder = tempfile::tempdir().unwrap();
    run_with_unreachable_redis_migrates_nothing(&database.url, folder.path()).await;
}

#[tokio::test]
async fn run_with_an_unreachable_redis_leaves_sqlite_unmigrated() {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", folder.path().join("lifecycle.db").display());
    run_with_unreachable_redis_migrates_nothing(&url, folder.path()).await;
}

/// An SMTP server down when `run` starts is a warning, not a refusal: mail waits in the
/// queue, every other job goes on.
async fn run_starts_with_a_warning_when_smtp_is_unreachable(backend: Backend) {
    let env = common::TestEnv::start(backend).await;
    let folder = tempfile::tempdir().unwrap();
    let log = folder.path().join("run.log");
    let mut service = Service::start(
        &env,
        &[
            ("SMTP_URL", "smtp://127.0.0.1:1"),
            ("RUST_LOG", "warn"),
            ("NO_COLOR", "1"),
        ],
        Some(&log),
    )
    .await;
    // It started (its HTTP port answers) and is still running.
    assert!(
        service.child.try_wait().unwrap().is_none(),
        "the service exited"
    );
    service.kill();
    let log = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("mail server"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN"), "{log}");
    assert!(
        warnings[0].contains("smtp://127.0.0.1:1 unreachable at start"),
        "{log}"
    );
}

on_both_backends!(run_starts_with_a_warning_when_smtp_is_unreachable);
