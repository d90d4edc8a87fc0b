//! J1, DeactivateUser on PostgreSQL: users each owning 1,000 opportunities, 1,000 contacts
//! and 200 tasks (plus sessions, an integration, a subscription, a salesperson license and
//! a team) are deactivated through the queue by one `lifecycle run` (production
//! configuration), one job at a time and at the configured concurrency.
//!
//! The floor is the same statements as bare SQL transactions: the deactivations are run once
//! more on a copy of the same database with `log_statement = 'all'`, each job's transaction
//! is read back from the server log with its parameters written in, and the transactions
//! are run one after the other on fresh copies: by `psql -f`, and from here with each
//! transaction sent as one message (one round trip); the faster is the floor. Every copy
//! must end in the same state as the queue's (checked), so the floor did the same work.
//!
//! `cargo bench --bench deactivation`; `J1_USERS` (40) users. The server log is found at
//! `/var/log/postgresql/postgresql-*-main.log` (Debian) unless `BENCH_PG_LOG` names it.
//! Prints a table and appends to `benches/results.jsonl`.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use lifecycle::demo::crm_data;
use lifecycle::queue::EnqueueRequest;
use lifecycle::store::{Store, ledger};
use lifecycle_jobs::{Actor, DeactivateUser};
use sqlx::PgPool;
use support::{Service, Table, median};

const OPPORTUNITIES: i64 = 1_000;
const CONTACTS: i64 = 1_000;
const TASKS: i64 = 200;
const TARGET_RATIO: f64 = 2.0;

const SEED: &str = "lifecycle_bench_j1_seed";
const SEQUENTIAL: &str = "lifecycle_bench_j1_one_at_a_time";
const CONCURRENT: &str = "lifecycle_bench_j1_concurrent";
const CAPTURE: &str = "lifecycle_bench_j1_capture";
const BARE: &str = "lifecycle_bench_j1_bare";
const BARE_PSQL: &str = "lifecycle_bench_j1_bare_psql";

struct World {
    account: i64,
    admin: i64,
    users: Vec<i64>,
}

/// An account whose admin leads the one team every user belongs to; each user a
/// salesperson with a license in Spain and the records above.
async fn seed_world(users: usize) -> World {
    let url = support::fresh_database(SEED).await;
    let app = support::app(support::production_settings(&url, "bench-j1-seed")).await;
    let now = chrono::Utc::now();
    let mut tx = app.store.begin().await.expect("begin");
    let account = crm_data::account(
        &mut tx,
        &crm_data::NewAccount {
            name: "Bench Ventas",
            time_zone: "UTC",
            billing_anchor_day: 1,
            contacts_policy: "unassign",
        },
        now,
    )
    .await
    .expect("account");
    let admin_role = crm_data::role(&mut tx, account, "Admin", 100, true)
        .await
        .expect("role");
    let agent_role = crm_data::role(&mut tx, account, "Agent", 10, false)
        .await
        .expect("role");
    let new_user = |email: &'static str| crm_data::NewUser {
        account_id: account,
        role_id: admin_role,
        first_name: "Ada",
        last_name: "Admin",
        email,
        country: "ES",
        status: "active",
    };
    let admin = crm_data::user(&mut tx, &new_user("ada@bench.test"), now)
        .await
        .expect("admin");
    let team = crm_data::team(&mut tx, account, "North", admin, now)
        .await
        .expect("team");
    crm_data::license_pool(&mut tx, account, "ES", users as i32 + 1)
        .await
        .expect("pool");
    let mut ids = Vec::with_capacity(users);
    for n in 0..users {
        let email = format!("agent{n}@bench.test");
        let user = crm_data::user(
            &mut tx,
            &crm_data::NewUser {
                account_id: account,
                role_id: agent_role,
                first_name: "Agent",
                last_name: "Bench",
                email: &email,
                country: "ES",
                status: "active",
            },
            now,
        )
        .await
        .expect("user");
        crm_data::team_member(&mut tx, team, user, now)
            .await
            .expect("member");
        crm_data::license(&mut tx, account, user, "ES", now)
            .await
            .expect("license");
        ids.push(user);
    }
    tx.commit().await.expect("commit");

    let Store::Postgres(pool) = &app.store else {
        unreachable!("production settings")
    };
    let bulk = [
        "INSERT INTO opportunities (account_id, owner_id, name, created_at)
         SELECT $1, u, 'Opportunity ' || n, now()
           FROM unnest($2::bigint[]) AS u, generate_series(1, $3) AS n",
        "INSERT INTO contacts (account_id, assignee_id, name, created_at)
         SELECT $1, u, 'Contact ' || n, now()
           FROM unnest($2::bigint[]) AS u, generate_series(1, $4) AS n",
        // A quarter completed, the rest open; half of them transferable.
        "INSERT INTO tasks (account_id, assignee_id, title, state, transferable, created_at)
         SELECT $1, u, 'Task ' || n,
                CASE WHEN n % 4 = 0 THEN 'completed' WHEN n % 2 = 0 THEN 'in_progress'
                     ELSE 'created' END,
                n % 3 = 0, now()
           FROM unnest($2::bigint[]) AS u, generate_series(1, $5) AS n",
        "INSERT INTO access_tokens (user_id, kind, token_hash, created_at)
         SELECT u, CASE WHEN n = 1 THEN 'api' ELSE 'session' END, md5(u || '-' || n), now()
           FROM unnest($2::bigint[]) AS u, generate_series(1, 3) AS n",
        "INSERT INTO integrations (user_id, kind) SELECT u, 'google' FROM unnest($2::bigint[]) AS u",
        "INSERT INTO subscriptions (user_id, plan, state)
         SELECT u, 'pro', 'active' FROM unnest($2::bigint[]) AS u",
    ];
    for sql in bulk {
        sqlx::query(sql)
            .bind(account)
            .bind(&ids)
            .bind(OPPORTUNITIES)
            .bind(CONTACTS)
            .bind(TASKS)
            .execute(pool)
            .await
            .unwrap_or_else(|error| panic!("seed: {error}\n{sql}"));
    }
    sqlx::query("VACUUM ANALYZE")
        .execute(pool)
        .await
        .expect("vacuum");
    app.store.close().await;
    World {
        account,
        admin,
        users: ids,
    }
}

/// A copy of the seeded database.
async fn copy_of_seed(name: &str) -> String {
    support::drop_database(name).await;
    support::admin_sql(format!("CREATE DATABASE {name} TEMPLATE {SEED}"))
        .await
        .expect("copy the seeded database");
    support::database_url(name)
}

/// One run through the queue: how long the whole batch took and each job took.
struct QueueRun {
    jobs_per_sec: f64,
    /// Claimed to outcome recorded, per job (ledger times).
    job_ms: Vec<f64>,
}

/// Deactivates every user through one `lifecycle run` on `url` (a copy of the seed).
async fn through_the_queue(url: &str, world: &World, concurrency: usize) -> QueueRun {
    let url = url.to_string();
    let namespace = format!("bench-j1-{}", uuid::Uuid::new_v4().simple());
    let app = support::app(support::production_settings(&url, &namespace)).await;
    let mut vars = support::production_vars(&url, &namespace);
    vars.push(("LIFECYCLE__QUEUE__CONCURRENCY", concurrency.to_string()));
    let mut service = Service::start(&["--config", "config/production.toml"], &vars, None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let requests: Vec<EnqueueRequest> = world
        .users
        .iter()
        .map(|user| {
            EnqueueRequest::for_job(
                &DeactivateUser {
                    account_id: world.account,
                    user_id: *user,
                    actor: Actor::User(world.admin),
                    reassign_to: None,
                    allow_reactivation_on_purchase: false,
                    requested_at: None,
                },
                None,
            )
            .expect("encode")
        })
        .collect();
    let started = Instant::now();
    app.queue.enqueue_batch(requests).await.expect("enqueue");
    let total = world.users.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = ledger::count_in_state(&app.store, "done")
            .await
            .expect("count");
        let dead = ledger::count_in_state(&app.store, "dead")
            .await
            .expect("count");
        assert_eq!(
            dead, 0,
            "a deactivation failed (BENCH_CHILD_LOG=<file> keeps the log)"
        );
        if done == total {
            break;
        }
        assert!(Instant::now() < deadline, "deactivations left undone");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let jobs_per_sec = total as f64 / started.elapsed().as_secs_f64();
    service.terminate();
    let Store::Postgres(pool) = &app.store else {
        unreachable!()
    };
    let job_ms: Vec<f64> = sqlx::query_scalar::<_, i64>(
        "SELECT finished_at_ms - locked_at_ms FROM jobs WHERE state = 'done'",
    )
    .fetch_all(pool)
    .await
    .expect("ledger")
    .into_iter()
    .map(|ms| ms as f64)
    .collect();
    app.store.close().await;
    support::forget_namespace(&namespace).await;
    QueueRun {
        jobs_per_sec,
        job_ms,
    }
}

/// Runs the deactivations through the queue on a copy logging every statement, and
/// returns the jobs' transactions, each as one SQL text (`BEGIN; …; COMMIT;`).
async fn capture_statements(world: &World) -> Vec<String> {
    let log = support::statement_log::server_log();
    let url = copy_of_seed(CAPTURE).await;
    support::admin_sql(format!(
        "ALTER DATABASE {CAPTURE} SET log_statement = 'all'"
    ))
    .await
    .expect("log every statement of the capture copy");
    let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    through_the_queue(&url, world, 1).await;
    let text = support::statement_log::since(offset);
    let transactions = job_transactions(&text, CAPTURE);
    assert_eq!(
        transactions.len(),
        world.users.len(),
        "one logged transaction per job (is log_statement honoured in {}?)",
        log.display()
    );
    transactions
        .into_iter()
        .map(|statements| format!("BEGIN;\n{};\nCOMMIT;\n", statements.join(";\n")))
        .collect()
}

/// The transactions sent bare from here, each as one message (one round trip), one after
/// the other on one connection. Returns transactions per second.
async fn bare_one_message_each(url: &str, transactions: &[String]) -> f64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let started = Instant::now();
    for transaction in transactions {
        sqlx::raw_sql(sqlx::AssertSqlSafe(transaction.clone()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|error| panic!("bare transaction failed: {error}"));
    }
    let rate = transactions.len() as f64 / started.elapsed().as_secs_f64();
    conn.close().await.ok();
    rate
}

/// The transactions (statements with their parameters written in) that the jobs ran on
/// `database`, in commit order: those that recorded a job as applied.
fn job_transactions(log: &str, database: &str) -> Vec<Vec<String>> {
    // Entries: a line starting with the timestamp, continued by lines starting with a tab.
    let mut entries: Vec<String> = Vec::new();
    for line in log.lines() {
        let starts_entry = line.len() > 4 && line.as_bytes()[..4].iter().all(u8::is_ascii_digit);
        match (starts_entry, entries.last_mut()) {
            (false, Some(entry)) => {
                entry.push('\n');
                entry.push_str(line.strip_prefix('\t').unwrap_or(line));
            }
            _ => entries.push(line.to_string()),
        }
    }
    let marker = format!("@{database} ");
    let mut open: HashMap<String, Vec<String>> = HashMap::new();
    let mut committed = Vec::new();
    for entry in entries {
        let Some(at) = entry.find(&marker) else {
            continue;
        };
        let pid = entry[..at]
            .rsplit_once('[')
            .and_then(|(_, rest)| rest.split_once(']'))
            .map_or("", |(pid, _)| pid)
            .to_string();
        let message = &entry[at + marker.len()..];
        if let Some(statement) = message.strip_prefix("LOG:  statement: ") {
            match statement.trim() {
                "BEGIN" => {
                    open.insert(pid, Vec::new());
                }
                "COMMIT" => {
                    if let Some(transaction) = open.remove(&pid)
                        && transaction
                            .iter()
                            .any(|s| s.contains("INSERT INTO applied_jobs"))
                    {
                        committed.push(transaction);
                    }
                }
                "ROLLBACK" => {
                    open.remove(&pid);
                }
                other => {
                    if let Some(transaction) = open.get_mut(&pid) {
                        transaction.push(other.to_string());
                    }
                }
            }
        } else if let Some(rest) = message.strip_prefix("LOG:  execute ") {
            let sql = rest.split_once(": ").map_or(rest, |(_, sql)| sql);
            if let Some(transaction) = open.get_mut(&pid) {
                transaction.push(sql.to_string());
            }
        } else if let Some(parameters) = message.strip_prefix("DETAIL:  parameters: ")
            && let Some(last) = open.get_mut(&pid).and_then(|t| t.last_mut())
        {
            *last = substitute(last, &parse_parameters(parameters));
        }
    }
    committed
}

/// `$1 = '5', $2 = NULL, …` as the values' SQL literals, by number.
fn parse_parameters(text: &str) -> HashMap<usize, String> {
    let mut values = HashMap::new();
    let mut rest = text.trim();
    while let Some(after_dollar) = rest.strip_prefix('$') {
        let digits: String = after_dollar
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let number: usize = digits.parse().expect("parameter number");
        let after = after_dollar[digits.len()..]
            .strip_prefix(" = ")
            .expect("parameter syntax");
        let (literal, remaining) = if let Some(null) = after.strip_prefix("NULL") {
            ("NULL".to_string(), null)
        } else {
            // A quoted literal, quotes doubled inside.
            let bytes = after.as_bytes();
            assert_eq!(bytes[0], b'\'', "a quoted parameter: {after}");
            let mut end = 1;
            loop {
                if bytes[end] == b'\'' {
                    if bytes.get(end + 1) == Some(&b'\'') {
                        end += 2;
                        continue;
                    }
                    break;
                }
                end += 1;
            }
            (after[..=end].to_string(), &after[end + 1..])
        };
        values.insert(number, literal);
        rest = remaining.trim_start_matches(", ").trim_start();
    }
    values
}

/// `sql` with each `$n` outside string literals replaced by its value.
fn substitute(sql: &str, values: &HashMap<usize, String>) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    let mut in_literal = false;
    while let Some((_, c)) = chars.next() {
        if c == '\'' {
            in_literal = !in_literal;
        }
        if c == '$' && !in_literal {
            let mut digits = String::new();
            while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            if let Some(value) = digits.parse().ok().and_then(|n: usize| values.get(&n)) {
                out.push_str(value);
                continue;
            }
            out.push('$');
            out.push_str(&digits);
            continue;
        }
        out.push(c);
    }
    out
}

/// What a deactivation leaves, summed over the users: both copies must agree.
async fn end_state(url: &str, world: &World) -> Vec<i64> {
    let pool = PgPool::connect(url).await.expect("connect");
    let mut state = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM users WHERE id = ANY($1) AND status = 'deactivated'",
        "SELECT COUNT(*) FROM opportunities WHERE owner_id = ANY($1)",
        "SELECT COUNT(*) FROM contacts WHERE assignee_id = ANY($1)",
        "SELECT COUNT(*) FROM tasks WHERE assignee_id = ANY($1) AND state <> 'completed'",
        "SELECT COUNT(*) FROM access_tokens WHERE user_id = ANY($1) AND revoked_at IS NULL",
        "SELECT COUNT(*) FROM salesperson_licenses WHERE user_id = ANY($1) AND state = 'releasing'",
        "SELECT COUNT(*) FROM team_memberships WHERE user_id = ANY($1) AND left_at IS NULL",
        "SELECT COUNT(*) FROM audit_log",
        "SELECT COUNT(*) FROM applied_jobs",
        "SELECT COUNT(*) FROM email_blocklist",
    ] {
        let count: i64 = sqlx::query_scalar(sql)
            .bind(&world.users)
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
        state.push(count);
    }
    pool.close().await;
    state
}

#[tokio::main]
async fn main() {
    let users: usize = support::env_or("J1_USERS", 40);
    eprintln!(
        "seeding {users} users with {OPPORTUNITIES} opportunities, {CONTACTS} contacts, {TASKS} tasks each"
    );
    let world = seed_world(users).await;

    eprintln!("capturing the jobs' statements");
    let transactions = capture_statements(&world).await;
    let script: String = transactions.concat();
    let script_path = std::env::temp_dir().join("lifecycle-j1-bare.sql");
    std::fs::write(&script_path, &script).expect("write the script");

    eprintln!("bare SQL: {users} transactions through psql");
    let psql_url = copy_of_seed(BARE_PSQL).await;
    let started = Instant::now();
    let output = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-o",
            "/dev/null",
            "-d",
            &psql_url,
            "-f",
        ])
        .arg(&script_path)
        .output()
        .expect("psql must be installed");
    let psql_rate = users as f64 / started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "the bare script failed ({}): {}",
        script_path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("bare SQL: {users} transactions, one message each");
    let bare_url = copy_of_seed(BARE).await;
    let message_rate = bare_one_message_each(&bare_url, &transactions).await;
    // The floor is the faster of the two.
    let bare_rate = psql_rate.max(message_rate);

    eprintln!("through the queue, one at a time");
    let one = through_the_queue(&copy_of_seed(SEQUENTIAL).await, &world, 1).await;
    eprintln!("through the queue, concurrency 50");
    let many = through_the_queue(&copy_of_seed(CONCURRENT).await, &world, 50).await;

    let queue_state = end_state(&support::database_url(SEQUENTIAL), &world).await;
    for url in [&bare_url, &psql_url] {
        assert_eq!(
            queue_state,
            end_state(url, &world).await,
            "the bare transactions must leave the state the jobs left"
        );
    }
    for database in [SEED, SEQUENTIAL, CONCURRENT, CAPTURE, BARE, BARE_PSQL] {
        support::drop_database(database).await;
    }

    let ratio = bare_rate / one.jobs_per_sec;
    let mut table = Table::new(
        &format!(
            "J1 DeactivateUser on PostgreSQL: {users} users, each {OPPORTUNITIES} opportunities, \
             {CONTACTS} contacts, {TASKS} tasks"
        ),
        &["run", "jobs/s", "ms per job", "floor rate / this rate"],
    );
    table.row(vec![
        "bare SQL through psql -f, one transaction after the other".into(),
        format!("{psql_rate:.1}"),
        format!("{:.1}", 1000.0 / psql_rate),
        format!("{:.2}", bare_rate / psql_rate),
    ]);
    table.row(vec![
        "bare SQL, each transaction one message (one round trip)".into(),
        format!("{message_rate:.1}"),
        format!("{:.1}", 1000.0 / message_rate),
        format!("{:.2}", bare_rate / message_rate),
    ]);
    table.row(vec![
        "through the queue, one at a time".into(),
        format!("{:.1}", one.jobs_per_sec),
        format!("{:.1}", 1000.0 / one.jobs_per_sec),
        format!("{ratio:.2}"),
    ]);
    table.row(vec![
        "through the queue, concurrency 50 (production)".into(),
        format!("{:.1}", many.jobs_per_sec),
        format!("{:.1}", 1000.0 / many.jobs_per_sec),
        format!("{:.2}", bare_rate / many.jobs_per_sec),
    ]);
    table.print();
    let mut verdict = Table::new(
        "J1 against its target",
        &["figure", "measured", "target", "met"],
    );
    verdict.row(vec![
        "bare rate / queue rate (one at a time)".into(),
        format!("{ratio:.2}"),
        format!("<= {TARGET_RATIO}"),
        if ratio <= TARGET_RATIO { "yes" } else { "NO" }.into(),
    ]);
    verdict.print();
    support::record(
        "J1 deactivation",
        serde_json::json!({
            "users": users,
            "opportunities": OPPORTUNITIES,
            "contacts": CONTACTS,
            "tasks": TASKS,
            "statements_per_job": script.matches(";\n").count() as f64 / users as f64 - 2.0,
            "bare_psql_jobs_per_sec": (psql_rate * 10.0).round() / 10.0,
            "bare_one_message_jobs_per_sec": (message_rate * 10.0).round() / 10.0,
            "queue_one_at_a_time_jobs_per_sec": (one.jobs_per_sec * 10.0).round() / 10.0,
            "queue_one_at_a_time_claimed_to_recorded_ms_median": median(&one.job_ms),
            "queue_concurrency_50_jobs_per_sec": (many.jobs_per_sec * 10.0).round() / 10.0,
            "ratio": (ratio * 100.0).round() / 100.0,
            "target_met": ratio <= TARGET_RATIO,
        }),
    );
}
