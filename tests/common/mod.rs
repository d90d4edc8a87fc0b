//! The test harness: a fresh database (a PostgreSQL database cloned from a migrated
//! template, or a new SQLite file) and a Redis namespace of its own per test, a worker on
//! demand, and a clock the test sets.
//!
//! PostgreSQL and Redis must answer (`.ci/run` makes sure of it): a scenario never skips
//! its production backend.
#![allow(dead_code)]

pub mod dashboard;
pub mod hostile;
pub mod http_client;
pub mod process;
pub mod smtp_sink;
pub mod sweeps;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifecycle::App;
use lifecycle::clock::Clock;
use lifecycle::config::{MailTransport, QueueBackend, Secret, Settings};
use lifecycle::queue::worker;
use lifecycle::queue::{EnqueueRequest, Enqueued};
use lifecycle::store::ledger::{self, JobRecord};
use lifecycle::store::{Store, Tx};
use lifecycle_jobs::Job;
use smtp_sink::SmtpSink;
use uuid::Uuid;

/// Which backends a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: SQLite store, queue in the same file.
    Sqlite,
    /// Production: PostgreSQL store, Redis Streams transport.
    PostgresRedis,
}

/// Runs an async scenario `fn(Backend)` once per backend, as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$scenario($crate::common::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_redis() {
                    super::$scenario($crate::common::Backend::PostgresRedis).await
                }
            }
        )+
    };
}

/// The request for a job, without an idempotency key.
pub fn request<J: Job>(job: &J) -> EnqueueRequest {
    EnqueueRequest::for_job(job, None).expect("encode job")
}

/// An account with an admin who may manage users, an agent role, a team led by the admin
/// and a license pool in Spain: the world of the onboarding, activation and lockout tests.
pub struct World {
    pub account: i64,
    pub admin: i64,
    pub admin_role: i64,
    pub agent_role: i64,
    pub team: i64,
}

pub async fn seed_world(env: &TestEnv, seats_in_spain: i32) -> World {
    use lifecycle::demo::crm_data;
    let now = env.clock.now();
    let mut tx = env.tx().await;
    let account = utc_account(&mut tx, "Acme Ventas", now).await;
    let admin_role = crm_data::role(&mut tx, account, "Admin", 100, true)
        .await
        .unwrap();
    let agent_role = crm_data::role(&mut tx, account, "Agent", 10, false)
        .await
        .unwrap();
    let admin = crm_data::user(
        &mut tx,
        &crm_data::NewUser {
            account_id: account,
            role_id: admin_role,
            first_name: "Ada",
            last_name: "Admin",
            email: "ada@acme.test",
            country: "ES",
            status: "active",
        },
        now,
    )
    .await
    .unwrap();
    let team = crm_data::team(&mut tx, account, "North", admin, now)
        .await
        .unwrap();
    crm_data::license_pool(&mut tx, account, "ES", seats_in_spain)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    World {
        account,
        admin,
        admin_role,
        agent_role,
        team,
    }
}

/// An active agent of the world's account, speaking `language`.
pub async fn seed_agent(env: &TestEnv, world: &World, first_name: &str, language: &str) -> i64 {
    use lifecycle::demo::crm_data;
    let mut tx = env.tx().await;
    let email = format!("{}@acme.test", first_name.to_lowercase());
    let user = crm_data::user(
        &mut tx,
        &crm_data::NewUser {
            account_id: world.account,
            role_id: world.agent_role,
            first_name,
            last_name: "Agent",
            email: &email,
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

/// `agents` new agents of the world and `per_agent` failed sign-ins of each, enqueued in
/// one batch (interleaved: one of each agent, then the next round): a workload whose
/// effects count themselves, each user's failure counter being exactly the failures applied.
pub async fn enqueue_failed_logins(
    env: &TestEnv,
    world: &World,
    agents: usize,
    per_agent: usize,
) -> Vec<i64> {
    let mut users = Vec::new();
    for n in 0..agents {
        users.push(seed_agent(env, world, &format!("Agent{n}"), "en").await);
    }
    let requests = (0..per_agent)
        .flat_map(|_| {
            users.iter().map(|user| {
                request(&lifecycle_jobs::RecordLogin {
                    account_id: world.account,
                    user_id: *user,
                    succeeded: false,
                    at: None,
                })
            })
        })
        .collect();
    env.app.queue.enqueue_batch(requests).await.unwrap();
    users
}

/// `count` no-op jobs, ready to enqueue in one batch.
pub fn noop_requests(count: usize) -> Vec<EnqueueRequest> {
    let payload = serde_json::to_string(&lifecycle_jobs::Noop { account_id: 1 }).unwrap();
    (0..count)
        .map(|_| EnqueueRequest {
            kind: <lifecycle_jobs::Noop as lifecycle_jobs::Job>::NAME,
            account_id: Some(1),
            payload: payload.clone(),
            idempotency_key: None,
            run_at_ms: None,
        })
        .collect()
}

/// An account in UTC, billed on the 1st, contacts unassigned on deactivation.
pub async fn utc_account(tx: &mut Tx, name: &str, now: DateTime<Utc>) -> i64 {
    lifecycle::demo::crm_data::account(
        tx,
        &lifecycle::demo::crm_data::NewAccount {
            name,
            time_zone: "UTC",
            billing_anchor_day: 1,
            contacts_policy: "unassign",
        },
        now,
    )
    .await
    .expect("seed account")
}

/// Eve, the active admin of a second account: the actor of cross-tenant attempts.
pub async fn admin_of_another_account(tx: &mut Tx, now: DateTime<Utc>) -> i64 {
    use lifecycle::demo::crm_data;
    let account = utc_account(tx, "Other", now).await;
    let role = crm_data::role(tx, account, "Admin", 100, true)
        .await
        .expect("seed role");
    crm_data::user(
        tx,
        &crm_data::NewUser {
            account_id: account,
            role_id: role,
            first_name: "Eve",
            last_name: "Other",
            email: "eve@other.test",
            country: "ES",
            status: "active",
        },
        now,
    )
    .await
    .expect("seed user")
}

pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// The instant every test's clock starts at, unless it sets another.
pub fn start_time() -> DateTime<Utc> {
    "2026-03-10T12:00:00Z".parse().unwrap()
}

pub struct TestEnv {
    pub backend: Backend,
    pub app: Arc<App>,
    pub clock: Clock,
    /// The SMTP server the service sends to: what a user would find in their mailbox.
    pub sink: SmtpSink,
    cleanup: Cleanup,
    worker: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { database: String, namespace: String },
}

impl TestEnv {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts with settings adjusted by `adjust` (retry limits, concurrency…).
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> Self {
        init_tracing();
        let mut settings = Settings::load(None).expect("default settings load");
        settings.queue.poll_interval_ms = 20;
        settings.queue.backoff_base_ms = 10;
        settings.queue.backoff_cap_secs = 1;
        settings.queue.shutdown_timeout_secs = 10;
        settings.queue.reconcile_interval_secs = 1;
        let namespace = format!("test-{}", Uuid::new_v4().simple());
        settings.queue.namespace = namespace.clone();
        settings.queue.events_stream = format!("{{lifecycle:{namespace}}}:events");
        let sink = SmtpSink::start().await;
        settings.mail.transport = MailTransport::Smtp;
        settings.mail.smtp_url = Secret::new(sink.url());
        settings.mail.timeout_secs = 5;
        let cleanup = match backend {
            Backend::Sqlite => {
                let folder = tempfile::tempdir().expect("temp dir");
                let path = folder.path().join("lifecycle.db");
                settings.database.url = Secret::new(format!("sqlite:{}", path.display()));
                settings.queue.backend = QueueBackend::Database;
                Cleanup::Sqlite(folder)
            }
            Backend::PostgresRedis => {
                let database = fresh_postgres_database().await;
                settings.database.url = Secret::new(database_url(&database));
                settings.queue.backend = QueueBackend::Redis;
                settings.queue.redis_url = Secret::new(redis_url());
                Cleanup::Postgres {
                    database,
                    namespace,
                }
            }
        };
        // The scheduler fires nothing unless a test schedules a sweep.
        lifecycle::schedule::unschedule_all(&mut settings.schedule);
        adjust(&mut settings);
        let clock = Clock::manual(start_time());
        let app = App::start(settings, clock.clone())
            .await
            .unwrap_or_else(|error| panic!("{backend:?} backend must be reachable: {error}"));
        TestEnv {
            backend,
            app,
            clock,
            sink,
            cleanup,
            worker: None,
        }
    }

    /// Enqueues `job` and waits until it is done or dead.
    pub async fn run<J: Job>(&mut self, job: &J) -> JobRecord {
        self.run_job(request(job)).await
    }

    /// Waits for `count` messages in the SMTP sink (returns all received so far), and for
    /// each to be marked sent: the server has a message a moment before the transaction
    /// that marks it (and stores the credentials it carries) commits.
    pub async fn mail(&self, count: usize) -> Vec<smtp_sink::ReceivedMessage> {
        let messages = self.sink.wait_for(count, Duration::from_secs(30)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for message in &messages {
            let Some(message_id) = message.header("Message-ID") else {
                continue;
            };
            let sql =
                "SELECT COUNT(*) FROM email_messages WHERE message_id = $1 AND state = 'sent'";
            loop {
                let marked: i64 = match self.store() {
                    Store::Postgres(pool) => {
                        sqlx::query_scalar(sql)
                            .bind(&message_id)
                            .fetch_one(pool)
                            .await
                    }
                    Store::Sqlite(pool) => {
                        sqlx::query_scalar(sql)
                            .bind(&message_id)
                            .fetch_one(pool)
                            .await
                    }
                }
                .unwrap_or(0);
                if marked > 0 {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "message {message_id} received but never marked sent"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        messages
    }

    /// The one integer a query with one `$1` parameter returns (a COUNT, an id): for
    /// assertions on rows no store function reads.
    pub async fn scalar(&self, sql: &'static str, param: i64) -> i64 {
        match self.store() {
            Store::Postgres(pool) => sqlx::query_scalar(sql).bind(param).fetch_one(pool).await,
            Store::Sqlite(pool) => sqlx::query_scalar(sql).bind(param).fetch_one(pool).await,
        }
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }

    /// Like [`TestEnv::scalar`] with a second, text parameter `$2`.
    pub async fn scalar_text_param(&self, sql: &'static str, param: i64, text: &str) -> i64 {
        match self.store() {
            Store::Postgres(pool) => {
                sqlx::query_scalar(sql)
                    .bind(param)
                    .bind(text)
                    .fetch_one(pool)
                    .await
            }
            Store::Sqlite(pool) => {
                sqlx::query_scalar(sql)
                    .bind(param)
                    .bind(text)
                    .fetch_one(pool)
                    .await
            }
        }
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }

    /// Like [`TestEnv::scalar`], `None` when the query fails (a connection cut on purpose).
    pub async fn scalar_opt(&self, sql: &'static str, param: i64) -> Option<i64> {
        match self.store() {
            Store::Postgres(pool) => sqlx::query_scalar(sql).bind(param).fetch_one(pool).await,
            Store::Sqlite(pool) => sqlx::query_scalar(sql).bind(param).fetch_one(pool).await,
        }
        .ok()
    }

    /// Every row of every table of the database, as text: to look for a secret in clear.
    pub async fn all_rows_as_text(&self) -> String {
        let mut dump = String::new();
        match self.store() {
            Store::Postgres(pool) => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                )
                .fetch_all(pool)
                .await
                .expect("list tables");
                for table in tables {
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT row_to_json(t)::text FROM \"{table}\" t"
                    )))
                    .fetch_all(pool)
                    .await
                    .expect("dump table");
                    dump.push_str(&format!("{table}: {}\n", rows.join("\n")));
                }
            }
            Store::Sqlite(pool) => {
                use sqlx::Row;
                let tables: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                        .fetch_all(pool)
                        .await
                        .expect("list tables");
                for table in tables {
                    let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT name FROM pragma_table_info('{table}')"
                    )))
                    .fetch_all(pool)
                    .await
                    .expect("columns");
                    let as_text = columns
                        .iter()
                        .map(|c| format!("COALESCE(CAST(\"{c}\" AS TEXT), '')"))
                        .collect::<Vec<_>>()
                        .join(" || '|' || ");
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {as_text} FROM \"{table}\""
                    )))
                    .fetch_all(pool)
                    .await
                    .expect("dump table");
                    for row in rows {
                        let text: String = row.try_get(0).unwrap_or_default();
                        dump.push_str(&format!("{table}: {text}\n"));
                    }
                }
            }
        }
        dump
    }

    /// Prunes the ledger as the `prune` sweep does at this moment: finished jobs past their
    /// retention, within `budget`. Returns how many went.
    pub async fn prune(&self, budget: Duration) -> u64 {
        let cutoffs = lifecycle::handlers::prune_job_history::cutoffs(
            &self.app.settings.queue,
            &self.clock,
            self.clock.now(),
        );
        ledger::prune(self.store(), cutoffs, budget)
            .await
            .expect("prune")
    }

    pub fn store(&self) -> &Store {
        &self.app.store
    }

    pub async fn tx(&self) -> Tx {
        self.app.store.begin().await.expect("begin")
    }

    /// Starts one apalis worker in this process.
    pub fn start_worker(&mut self) {
        self.start_workers(1)
    }

    /// Starts `workers` apalis workers in this process (`lifecycle run --workers N`).
    pub fn start_workers(&mut self, workers: usize) {
        if self.worker.is_some() {
            return;
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = self.app.clone();
        let handle = tokio::spawn(async move {
            worker::run_until(app, workers, async move {
                let _ = stopped.await;
                Ok(())
            })
            .await
            .expect("worker runs");
        });
        self.worker = Some((stop, handle));
    }

    pub async fn stop_worker(&mut self) {
        if let Some((stop, handle)) = self.worker.take() {
            let _ = stop.send(());
            handle.await.expect("worker stops cleanly");
        }
    }

    pub async fn enqueue(&self, request: EnqueueRequest) -> Enqueued {
        self.app.queue.enqueue(request).await.expect("enqueue")
    }

    /// Enqueues, runs the worker, and waits until the job is done or dead.
    pub async fn run_job(&mut self, request: EnqueueRequest) -> JobRecord {
        let enqueued = self.enqueue(request).await;
        self.wait_for(enqueued.id).await
    }

    /// Waits (with the worker running) until the job is done or dead.
    pub async fn wait_for(&mut self, job_id: Uuid) -> JobRecord {
        self.start_worker();
        lifecycle::demo::waiter::wait_until_finished(&self.app, job_id, Duration::from_secs(60))
            .await
            .expect("the job finishes")
    }

    /// Like [`TestEnv::wait_for`], moving the clock forward by `step` at every look, so
    /// that retries scheduled for later come due.
    pub async fn wait_for_with_clock_running(
        &mut self,
        job_id: Uuid,
        step: chrono::Duration,
    ) -> JobRecord {
        self.start_worker();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let record = self.job(job_id).await;
            if record.state == ledger::state::DONE || record.state == ledger::state::DEAD {
                return record;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job_id} did not finish"
            );
            self.clock.advance(step);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn job(&self, job_id: Uuid) -> JobRecord {
        ledger::get(self.store(), job_id)
            .await
            .expect("ledger read")
            .expect("the job is in the ledger")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.worker.take() {
            let _ = stop.send(());
            handle.abort();
        }
        if let Cleanup::Postgres {
            database,
            namespace,
        } = &self.cleanup
        {
            let (database, namespace) = (database.clone(), namespace.clone());
            // Drop runs inside the test's runtime: clean up from a thread of our own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    drop_postgres_database(&database).await;
                    delete_redis_namespace(&namespace).await;
                });
            })
            .join();
        }
    }
}

/// Logs through the test writer (shown for failing tests), `RUST_LOG` or warnings.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

fn database_url(database: &str) -> String {
    let base = postgres_url();
    let cut = base.rfind('/').expect("a database url has a path");
    format!("{}/{database}", &base[..cut])
}

/// A migrated template, made once per schema (its name carries a hash of the
/// migrations), cloned for each test.
async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&postgres_url())
        .await
        .expect("PostgreSQL must answer at TEST_DATABASE_URL");
    let template = format!("lifecycle_template_{:016x}", migrations_hash());
    sqlx::query("SELECT pg_advisory_lock(7312)")
        .execute(&mut admin)
        .await
        .expect("lock");
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&template)
        .fetch_optional(&mut admin)
        .await
        .expect("look up template");
    if exists.is_none() {
        let building = format!("{template}_building");
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {building}"
        )))
        .execute(&mut admin)
        .await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {building}")))
            .execute(&mut admin)
            .await
            .expect("create template");
        let store = Store::connect(&database_url(&building), 2)
            .await
            .expect("connect template");
        store.migrate().await.expect("migrate template");
        store.close().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {building} RENAME TO {template}"
        )))
        .execute(&mut admin)
        .await
        .expect("publish template");
    }
    sqlx::query("SELECT pg_advisory_unlock(7312)")
        .execute(&mut admin)
        .await
        .expect("unlock");
    let database = format!("lifecycle_test_{}", Uuid::new_v4().simple());
    let mut tries = 0;
    loop {
        let created = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {database} TEMPLATE {template}"
        )))
        .execute(&mut admin)
        .await;
        match created {
            Ok(_) => break,
            // Two clones at the same instant: PostgreSQL refuses one; try again.
            Err(_) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("create test database: {error}"),
        }
    }
    database
}

/// A new, empty PostgreSQL database (no schema), dropped by the returned guard.
pub async fn empty_postgres_database() -> EmptyDatabase {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&postgres_url())
        .await
        .expect("PostgreSQL must answer at TEST_DATABASE_URL");
    let name = format!("lifecycle_test_{}", Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    EmptyDatabase {
        url: database_url(&name),
        name,
    }
}

pub struct EmptyDatabase {
    pub url: String,
    name: String,
}

impl Drop for EmptyDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(drop_postgres_database(&name));
        })
        .join();
    }
}

async fn drop_postgres_database(database: &str) {
    use sqlx::Connection;
    if let Ok(mut admin) = sqlx::PgConnection::connect(&postgres_url()).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
    }
}

async fn delete_redis_namespace(namespace: &str) {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let prefix = format!("{{lifecycle:{namespace}}}");
    for suffix in [":stream", ":delayed", ":epoch", ":events"] {
        let _: Result<(), _> = redis::cmd("DEL")
            .arg(format!("{prefix}{suffix}"))
            .query_async(&mut conn)
            .await;
    }
}

fn migrations_hash() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(folder)
        .expect("migrations folder")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    for file in files {
        file.file_name().hash(&mut hasher);
        std::fs::read(&file)
            .expect("read migration")
            .hash(&mut hasher);
    }
    hasher.finish()
}

/// Jobs of account `$1` with an attempt nobody said the end of: a done job must have an
/// error row for each attempt before the last, a dead one for every attempt.
pub const UNEXPLAINED_ATTEMPTS: &str = "SELECT COUNT(*) FROM jobs j
     WHERE j.account_id = $1
       AND ((j.state = 'done' AND (SELECT COUNT(*) FROM job_attempt_errors e
                                    WHERE e.job_id = j.id) < j.attempts - 1)
         OR (j.state = 'dead' AND (SELECT COUNT(*) FROM job_attempt_errors e
                                    WHERE e.job_id = j.id) < j.attempts))";
