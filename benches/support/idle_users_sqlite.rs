//! S1 on the embedded default: the same population written to a SQLite file through sqlx
//! (recursive CTEs, one transaction), the same changes as set-based statements in SQLite's
//! dialect (the floor), and the same counts.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::Connection;

use super::idle_users::{OUTCOME_SQL, Outcome, Population, outcome};

/// Fills an empty, migrated SQLite file (through sqlx, recursive CTEs, one transaction).
pub async fn fill(path: &Path, population: Population) -> Duration {
    let Population {
        users,
        idle,
        accounts,
    } = population;
    let started = Instant::now();
    let url = format!("sqlite:{}", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
    // Instants as sqlx writes them (RFC 3339, UTC), `days` ago.
    let ago = |days: &str| format!("strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', {days})");
    let script = format!(
        "BEGIN;
         WITH RECURSIVE a(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM a WHERE x < {accounts})
         INSERT INTO accounts (id, name, time_zone, billing_anchor_day, contacts_policy, created_at)
         SELECT x, 'Account ' || x, 'UTC', 1, 'unassign', {created} FROM a;
         WITH RECURSIVE a(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM a WHERE x < {accounts})
         INSERT INTO roles (id, account_id, name, rank, can_manage_users, is_admin)
         SELECT x * 2 - 1, x, 'admin', 1, 1, 1 FROM a
         UNION ALL SELECT x * 2, x, 'agent', 3, 0, 0 FROM a;
         WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < {users} - 1)
         INSERT INTO users (id, account_id, first_name, last_name, email, email_normalized,
                            country, language, role_id, status, last_login_at,
                            last_activity_at, confirmed_at, password_changed_at, created_at,
                            updated_at)
         SELECT n + 1, n % {accounts} + 1, 'First' || n, 'Last' || n,
                'user' || n || '@example.com', 'user' || n || '@example.com', 'ES',
                CASE n % 4 WHEN 0 THEN 'en' WHEN 1 THEN 'es' WHEN 2 THEN 'fr' ELSE 'pt' END,
                (n % {accounts} + 1) * 2 - CASE WHEN n < {accounts} THEN 1 ELSE 0 END,
                'active', seen, seen, {confirmed}, {changed}, {confirmed}, {now}
           FROM (SELECT n, CASE WHEN n >= {users} - {idle}
                      THEN strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-100 days',
                                    '-' || (n % 1000) || ' hours')
                      ELSE strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now',
                                    '-' || (n % 720) || ' hours') END AS seen FROM g);
         COMMIT;
         ANALYZE;",
        created = ago("'-500 days'"),
        confirmed = ago("'-400 days'"),
        changed = ago("'-30 days'"),
        now = ago("'+0 days'"),
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|error| panic!("S1 SQLite fill: {error}"));
    conn.close().await.ok();
    started.elapsed()
}

/// Instants as sqlx writes them to SQLite (RFC 3339, UTC) and as the fill wrote them, so
/// that they compare as text.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')";

/// The changes LockIdleUsers makes, set-based, in one transaction on the SQLite file:
/// as `bare_lock_idle_postgres` (job ids random blobs: SQLite has no UUID function).
pub async fn bare_lock_idle(path: &Path) -> Vec<(&'static str, Duration)> {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
        .await
        .expect("open");
    let seen = "max(COALESCE(last_activity_at, ''), COALESCE(last_login_at, ''),
                    COALESCE(confirmed_at, ''))";
    let job = "x'019ad000000070008000000000000001'";
    let statements: [(&'static str, String); 8] = [
        ("BEGIN", "BEGIN".into()),
        (
            "find the idle users",
            format!(
                "CREATE TEMP TABLE locked AS
                 SELECT id, account_id, first_name, last_name, email, language, {seen} AS seen
                   FROM users
                  WHERE status = 'active'
                    AND {seen} <= strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-90 days')"
            ),
        ),
        (
            "lock them",
            format!(
                "UPDATE users SET status = 'locked', lock_reason = 'idle', updated_at = {NOW}
                  WHERE id IN (SELECT id FROM locked)"
            ),
        ),
        (
            "their audit rows",
            format!(
                "INSERT INTO audit_log (account_id, actor, job_id, entity, entity_id, action,
                                        detail, at)
                 SELECT account_id, 'system', {job}, 'user', id, 'locked',
                        json_object('sweep', 'lock_idle', 'deadline', seen, 'at', {NOW}), {NOW}
                   FROM locked ORDER BY id"
            ),
        ),
        (
            "their email rows",
            format!(
                "INSERT INTO email_messages (account_id, user_id, template, language,
                                             to_address, to_name, variables, state,
                                             created_by_job, created_at)
                 SELECT l.account_id, l.id, 'locked_idle', l.language, l.email,
                        l.first_name || ' ' || l.last_name,
                        json_object('first_name', l.first_name, 'last_name', l.last_name,
                                    'account_name', a.name,
                                    'idle_days', CAST(julianday('now') - julianday(l.seen) AS INTEGER),
                                    'locked_at', strftime('%Y-%m-%d %H:%M UTC', 'now')),
                        'pending', {job}, {NOW}
                   FROM locked l JOIN accounts a ON a.id = l.account_id ORDER BY l.id"
            ),
        ),
        (
            "a SendEmail job per email (the ledger row)",
            "INSERT INTO jobs (id, kind, account_id, payload, idempotency_key, state, attempts,
                               max_attempts, run_at_ms, created_at_ms, pushed_at_ms)
             SELECT randomblob(16), 'mail::send', account_id,
                    json_object('account_id', account_id, 'email_id', id),
                    'mail::send:' || id, 'queued', 0, 25, ms, ms, ms
               FROM email_messages,
                    (SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS ms)
              WHERE template = 'locked_idle' ORDER BY id"
                .into(),
        ),
        (
            "an event per account",
            format!(
                "INSERT INTO events (kind, account_id, job_id, batch, at, changes)
                 SELECT 'sweep::lock_idle_users', account_id, {job}, account_id, {NOW},
                        json_group_array(json_object('entity', 'user', 'entity_id', id,
                                                     'action', 'locked'))
                   FROM locked GROUP BY account_id"
            ),
        ),
        ("COMMIT", "COMMIT".into()),
    ];
    let mut timings = Vec::new();
    for (name, sql) in statements {
        let started = Instant::now();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|error| panic!("bare S1 SQLite statement: {error}\n{sql}"));
        timings.push((name, started.elapsed()));
    }
    conn.close().await.ok();
    timings
}

pub async fn outcome_of(path: &Path) -> Outcome {
    let url = format!("sqlite:{}", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
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
