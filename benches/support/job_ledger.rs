//! D1's ledger: `jobs` rows written set-based on PostgreSQL, ids UUIDv7 made in SQL from
//! each job's creation instant (so the primary key orders them by creation, as the
//! service's ids do), a share of them dead across a few kinds, the rest done.

use std::time::{Duration, Instant};

use sqlx::Connection;

/// The kinds the dead jobs are spread over, round robin; the done jobs use these and more.
pub const DEAD_KINDS: [&str; 3] = [
    "user::activate_salesperson",
    "mail::send",
    "license::release",
];

const DONE_KINDS: [&str; 6] = [
    "user::record_activity",
    "user::record_login",
    "mail::send",
    "user::deactivate",
    "user::activate_salesperson",
    "license::release",
];

/// Writes `jobs` rows, one every 10 ms of creation time ending now; `dead` of them dead
/// (their kind from [`DEAD_KINDS`]), spread evenly over the oldest 70%, the others done.
/// Returns the time taken.
pub async fn fill(url: &str, jobs: i64, dead: i64) -> Duration {
    let failing = jobs * 7 / 10;
    assert!(
        dead > 0 && dead <= failing,
        "D1_DEAD must be between 1 and 70% of D1_JOBS"
    );
    let every = failing / dead;
    let dead_kinds = sql_array(&DEAD_KINDS);
    let done_kinds = sql_array(&DONE_KINDS);
    let dead_kind_count = DEAD_KINDS.len();
    let done_kind_count = DONE_KINDS.len();
    let started = Instant::now();
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let statements = [
        format!(
            "INSERT INTO jobs (id, kind, account_id, payload, state, attempts, max_attempts,
                               run_at_ms, locked_by, locked_at_ms, last_error, created_at_ms,
                               finished_at_ms, pushed_at_ms)
             SELECT (lpad(to_hex(ms), 12, '0') || '7' || substr(md5(n::text), 1, 3)
                     || substr('89ab', 1 + (n % 4)::int, 1) || substr(md5(n::text), 4, 15))::uuid,
                    CASE WHEN dead THEN ({dead_kinds})[(n / {every}) % {dead_kind_count} + 1]
                         ELSE ({done_kinds})[n % {done_kind_count} + 1] END,
                    n % 1000 + 1,
                    json_build_object('account_id', n % 1000 + 1, 'user_id', n % 100000 + 1,
                                      'actor', 'system')::text,
                    CASE WHEN dead THEN 'dead' ELSE 'done' END,
                    CASE WHEN dead THEN 8 ELSE 1 END, 8, ms, NULL, NULL,
                    CASE WHEN dead THEN 'no free seat in ES for account ' || (n % 1000 + 1) END,
                    ms, ms + 40, ms
               FROM generate_series(0, {jobs} - 1) n,
                    LATERAL (SELECT (extract(epoch from now()) * 1000)::bigint
                                    - ({jobs} - n) * 10 AS ms,
                                    n % {every} = 0 AND n / {every} < {dead} AS dead) j"
        ),
        "VACUUM ANALYZE jobs".to_string(),
    ];
    for sql in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|error| panic!("D1 fill: {error}\n{sql}"));
    }
    conn.close().await.ok();
    started.elapsed()
}

fn sql_array(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("'{item}'")).collect();
    format!("ARRAY[{}]", quoted.join(", "))
}

/// Jobs in each state (`dead`, `queued`, `done`), for the counts before and after.
pub async fn states(url: &str) -> (i64, i64, i64) {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let count = async |conn: &mut sqlx::PgConnection, state: &str| -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = $1")
            .bind(state)
            .fetch_one(conn)
            .await
            .expect("count")
    };
    let dead = count(&mut conn, "dead").await;
    let queued = count(&mut conn, "queued").await;
    let done = count(&mut conn, "done").await;
    conn.close().await.ok();
    (dead, queued, done)
}

/// The bare re-queue of every dead job, as the operator's retry leaves them. Returns the
/// rows changed and the time.
pub async fn bare_requeue_dead(url: &str) -> (u64, Duration) {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let started = Instant::now();
    let changed = sqlx::query(
        "UPDATE jobs SET state = 'queued', run_at_ms = $1, locked_by = NULL,
                         locked_at_ms = NULL, finished_at_ms = NULL, pushed_at_ms = $1
          WHERE state = 'dead'",
    )
    .bind(chrono::Utc::now().timestamp_millis())
    .execute(&mut conn)
    .await
    .expect("bare re-queue")
    .rows_affected();
    let took = started.elapsed();
    conn.close().await.ok();
    (changed, took)
}

/// The id that ends page `page` (1-based) of `page_size` jobs, newest first, among those
/// matching `where_clause`; `None` when there are fewer. With it as the cursor, the next
/// page is page `page + 1`.
pub async fn page_end(
    url: &str,
    where_clause: &str,
    page: i64,
    page_size: i64,
) -> Option<uuid::Uuid> {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let id = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM jobs WHERE {where_clause} ORDER BY id DESC OFFSET $1 LIMIT 1"
    )))
    .bind(page * page_size - 1)
    .fetch_optional(&mut conn)
    .await
    .expect("page end");
    conn.close().await.ok();
    id
}

/// Matching jobs, to pick the deepest page a filter has.
pub async fn count(url: &str, where_clause: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let count = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM jobs WHERE {where_clause}"
    )))
    .fetch_one(&mut conn)
    .await
    .expect("count");
    conn.close().await.ok();
    count
}

/// Makes the jobs a retry (or the bare UPDATE) re-queued dead again, as the fill left them,
/// and vacuums, for another round.
pub async fn requeued_dead_again(url: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    for sql in [
        "UPDATE jobs SET state = 'dead', run_at_ms = created_at_ms,
                         finished_at_ms = created_at_ms + 40, pushed_at_ms = created_at_ms
          WHERE state = 'queued' AND attempts > 0",
        "VACUUM ANALYZE jobs",
    ] {
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|error| panic!("D1 reset: {error}\n{sql}"));
    }
    conn.close().await.ok();
}
