//! S1's data, its run through the service, and its floor: accounts full of active users, a share of them idle past the 90
//! days, written set-based (one statement per table) on PostgreSQL and on SQLite; the
//! set-based statements that make the changes LockIdleUsers makes; and the counts that
//! say those changes were made, once per idle user.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::Connection;

use super::Service;

/// The population: `users` spread round robin over `accounts`; the last `idle` of them (by
/// number, so the same count in every account) last seen 100 to 141 days ago, the others
/// within the last 30 days (no warning falls due: the first stage is 14 days before 90).
/// The first user of each account is its administrator (may manage users) and is active,
/// so the last-manager exemption saves nobody idle.
#[derive(Clone, Copy, Debug)]
pub struct Population {
    pub users: i64,
    pub idle: i64,
    pub accounts: i64,
}

impl Population {
    /// Panics unless the breaker (20% of an account's active users) lets every account
    /// through and every administrator stays active.
    pub fn checked(self) -> Self {
        assert!(
            self.accounts > 0 && self.users >= 2 * self.accounts,
            "S1 needs at least two users per account: {self:?}"
        );
        assert!(
            self.idle * 5 < self.users && self.idle % self.accounts == 0,
            "the idle users must be under 20% of the users and a multiple of the accounts \
             (each account then holds the same share): {self:?}"
        );
        self
    }
}

/// Fills an empty, migrated PostgreSQL database.
pub async fn fill_postgres(url: &str, population: Population) -> Duration {
    let Population {
        users,
        idle,
        accounts,
    } = population;
    let started = Instant::now();
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let statements = [
        format!(
            "INSERT INTO accounts (id, name, time_zone, billing_anchor_day, contacts_policy, created_at)
             SELECT a, 'Account ' || a, 'UTC', 1, 'unassign', now() - interval '500 days'
               FROM generate_series(1, {accounts}) a"
        ),
        format!(
            "INSERT INTO roles (id, account_id, name, rank, can_manage_users, is_admin)
             SELECT a * 2 - 1 + k, a, CASE k WHEN 0 THEN 'admin' ELSE 'agent' END, 1 + 2 * k,
                    k = 0, k = 0
               FROM generate_series(1, {accounts}) a, generate_series(0, 1) k"
        ),
        format!(
            "INSERT INTO users (id, account_id, first_name, last_name, email, email_normalized,
                                country, language, role_id, status, last_login_at,
                                last_activity_at, confirmed_at, password_changed_at,
                                created_at, updated_at)
             SELECT n + 1, n % {accounts} + 1, 'First' || n, 'Last' || n,
                    'user' || n || '@example.com', 'user' || n || '@example.com', 'ES',
                    (ARRAY['en', 'es', 'fr', 'pt'])[n % 4 + 1],
                    (n % {accounts} + 1) * 2 - CASE WHEN n < {accounts} THEN 1 ELSE 0 END,
                    'active', seen, seen, now() - interval '400 days',
                    now() - interval '30 days', now() - interval '400 days', now()
               FROM generate_series(0, {users} - 1) n,
                    LATERAL (SELECT CASE WHEN n >= {users} - {idle}
                        THEN now() - interval '100 days' - (n % 1000) * interval '1 hour'
                        ELSE now() - (n % 720) * interval '1 hour' END AS seen) s"
        ),
        "SELECT setval(pg_get_serial_sequence('accounts', 'id'), (SELECT max(id) FROM accounts))"
            .to_string(),
        "SELECT setval(pg_get_serial_sequence('roles', 'id'), (SELECT max(id) FROM roles))"
            .to_string(),
        "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))"
            .to_string(),
        "VACUUM ANALYZE users".to_string(),
        "ANALYZE".to_string(),
    ];
    for sql in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|error| panic!("S1 fill: {error}\n{sql}"));
    }
    conn.close().await.ok();
    started.elapsed()
}

/// The changes LockIdleUsers makes, as set-based statements in one transaction on
/// PostgreSQL: lock the idle users, their audit rows, their email rows, the SendEmail job
/// recorded for each email (the sweep records one per email, so the floor does too), one
/// event per account. Returns each statement's name and time.
pub async fn bare_lock_idle_postgres(url: &str) -> Vec<(&'static str, Duration)> {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    // A UUIDv7 made in SQL (PostgreSQL 15 has no uuidv7()): the millisecond clock, then
    // random bits with the version and variant set, as the service's ids are.
    let uuid7 = "(lpad(to_hex((extract(epoch from clock_timestamp()) * 1000)::bigint), 12, '0')
                  || '7' || substr(md5(random()::text), 1, 3)
                  || substr('89ab', 1 + floor(random() * 4)::int, 1)
                  || substr(md5(random()::text), 1, 15))::uuid";
    let statements: [(&'static str, String); 7] = [
        ("BEGIN", "BEGIN".into()),
        (
            "lock the idle users (UPDATE .. RETURNING)",
            "CREATE TEMP TABLE locked ON COMMIT DROP AS
             WITH locked AS (
                 UPDATE users SET status = 'locked', lock_reason = 'idle', updated_at = now()
                  WHERE status = 'active'
                    AND GREATEST(last_activity_at, last_login_at, confirmed_at)
                        <= now() - interval '90 days'
              RETURNING id, account_id, first_name, last_name, email, language,
                        GREATEST(last_activity_at, last_login_at, confirmed_at) AS seen)
             SELECT * FROM locked"
                .into(),
        ),
        (
            "their audit rows",
            "INSERT INTO audit_log (account_id, actor, job_id, entity, entity_id, action, detail, at)
             SELECT account_id, 'system', '00000000-0000-7000-8000-000000000001', 'user', id,
                    'locked', json_build_object('sweep', 'lock_idle',
                        'deadline', seen + interval '90 days', 'at', now())::text, now()
               FROM locked ORDER BY id"
                .into(),
        ),
        (
            "their email rows",
            "CREATE TEMP TABLE emailed ON COMMIT DROP AS
             WITH emailed AS (
                 INSERT INTO email_messages (account_id, user_id, template, language,
                                             to_address, to_name, variables, state,
                                             created_by_job, created_at)
                 SELECT l.account_id, l.id, 'locked_idle', l.language, l.email,
                        l.first_name || ' ' || l.last_name,
                        json_build_object('first_name', l.first_name, 'last_name', l.last_name,
                            'account_name', a.name,
                            'idle_days', extract(day from now() - l.seen)::int,
                            'locked_at', to_char(now(), 'YYYY-MM-DD HH24:MI') || ' UTC')::text,
                        'pending', '00000000-0000-7000-8000-000000000001', now()
                   FROM locked l JOIN accounts a ON a.id = l.account_id ORDER BY l.id
              RETURNING id, account_id)
             SELECT * FROM emailed"
                .into(),
        ),
        (
            "a SendEmail job per email (the ledger row)",
            format!(
                "INSERT INTO jobs (id, kind, account_id, payload, idempotency_key, state, attempts,
                                   max_attempts, run_at_ms, created_at_ms, pushed_at_ms)
                 SELECT {uuid7}, 'mail::send', account_id,
                        json_build_object('account_id', account_id, 'email_id', id)::text,
                        'mail::send:' || id, 'queued', 0, 25, ms, ms, ms
                   FROM emailed,
                        LATERAL (SELECT (extract(epoch from now()) * 1000)::bigint AS ms) m
                  ORDER BY id"
            ),
        ),
        (
            "an event per account",
            "INSERT INTO events (kind, account_id, job_id, batch, at, changes)
             SELECT 'sweep::lock_idle_users', account_id, '00000000-0000-7000-8000-000000000001',
                    account_id, now(),
                    json_agg(json_build_object('entity', 'user', 'entity_id', id,
                                               'action', 'locked') ORDER BY id)::text
               FROM locked GROUP BY account_id"
                .into(),
        ),
        ("COMMIT", "COMMIT".into()),
    ];
    let mut timings = Vec::new();
    for (name, sql) in statements {
        let started = Instant::now();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|error| panic!("bare S1 statement: {error}\n{sql}"));
        timings.push((name, started.elapsed()));
    }
    conn.close().await.ok();
    timings
}

/// What a lock-idle run left: users locked idle, their audit rows (and distinct users
/// audited), their `locked_idle` emails (and distinct users emailed), users still active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub locked: i64,
    pub audit_rows: i64,
    pub audited_users: i64,
    pub emails: i64,
    pub emailed_users: i64,
    pub active: i64,
}

pub(super) const OUTCOME_SQL: [&str; 6] = [
    "SELECT COUNT(*) FROM users WHERE status = 'locked' AND lock_reason = 'idle'",
    "SELECT COUNT(*) FROM audit_log WHERE entity = 'user' AND action = 'locked'",
    "SELECT COUNT(DISTINCT entity_id) FROM audit_log WHERE entity = 'user' AND action = 'locked'",
    "SELECT COUNT(*) FROM email_messages WHERE template = 'locked_idle'",
    "SELECT COUNT(DISTINCT user_id) FROM email_messages WHERE template = 'locked_idle'",
    "SELECT COUNT(*) FROM users WHERE status = 'active'",
];

pub(super) fn outcome(counts: Vec<i64>) -> Outcome {
    Outcome {
        locked: counts[0],
        audit_rows: counts[1],
        audited_users: counts[2],
        emails: counts[3],
        emailed_users: counts[4],
        active: counts[5],
    }
}

pub async fn outcome_postgres(url: &str) -> Outcome {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let mut counts = Vec::new();
    for sql in OUTCOME_SQL {
        counts.push(
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&mut conn)
                .await
                .expect(sql),
        );
    }
    conn.close().await.ok();
    outcome(counts)
}

impl Outcome {
    /// Panics unless exactly the idle users were locked, each with one audit row and one
    /// email, and everyone else is still active.
    pub fn assert_locked_once(&self, population: Population, run: &str) {
        let idle = population.idle;
        assert_eq!(
            *self,
            Outcome {
                locked: idle,
                audit_rows: idle,
                audited_users: idle,
                emails: idle,
                emailed_users: idle,
                active: population.users - idle,
            },
            "{run}: every idle user locked once, audited once, emailed once"
        );
    }
}

/// One sweep through the service: its wall time (enqueue to done, as the ledger stamped
/// them, and as seen from here) and the RSS samples.
pub struct SweepRun {
    pub ledger_wall: Duration,
    pub observed_wall: Duration,
    pub peak_sampled_kib: u64,
    pub peak_hwm_kib: u64,
    pub rss_before_kib: u64,
}

/// Pauses the mail kind, enqueues LockIdleUsers through the CLI and waits for the job to
/// be done, sampling the service's RSS every 100 ms.
pub async fn sweep_through_service(
    service: &Service,
    vars: &[(&str, String)],
    cwd: Option<&Path>,
    config: &[&str],
    job_state: impl AsyncFn(uuid::Uuid) -> (String, Option<i64>, Option<i64>),
) -> SweepRun {
    let cli = |args: &[&str]| {
        let all: Vec<&str> = config.iter().chain(args).copied().collect();
        super::cli::lifecycle(&all, vars, cwd, None)
    };
    cli(&["jobs", "pause", "mail::send"]);
    let rss_before_kib = service.rss_kib();
    let started = Instant::now();
    let printed = cli(&["sweep", "lock-idle"]);
    let job: uuid::Uuid = printed
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("`sweep lock-idle` prints the job id: {printed:?}"));
    let mut peak_sampled_kib = 0;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        peak_sampled_kib = peak_sampled_kib.max(service.rss_kib());
        let (state, created_ms, finished_ms) = job_state(job).await;
        match state.as_str() {
            "done" => {
                let ledger_ms = finished_ms.unwrap_or_default() - created_ms.unwrap_or_default();
                return SweepRun {
                    ledger_wall: Duration::from_millis(ledger_ms.max(0) as u64),
                    observed_wall: started.elapsed(),
                    peak_sampled_kib,
                    peak_hwm_kib: service.peak_rss_kib(),
                    rss_before_kib,
                };
            }
            "dead" | "discarded" => panic!("the sweep job {job} ended {state}"),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the sweep did not finish in an hour"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
