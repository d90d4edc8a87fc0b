//! Where a run's database time went: with `log_min_duration_statement = 0` set on one
//! database, the server logs every statement's duration (parse, bind and execute each);
//! summed per statement text, the few that dominate stand out. Reads the server's log
//! (`BENCH_PG_LOG`, else the newest `/var/log/postgresql/postgresql-*-main.log`).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

pub fn server_log() -> PathBuf {
    if let Some(path) = std::env::var_os("BENCH_PG_LOG") {
        return PathBuf::from(path);
    }
    std::fs::read_dir("/var/log/postgresql")
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| {
                            name.starts_with("postgresql-") && name.ends_with("-main.log")
                        })
                })
                .max_by_key(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        })
        .expect("the PostgreSQL server log: set BENCH_PG_LOG")
}

/// Logging of every statement's duration on `database`, from now: the log's length now.
pub async fn start(database: &str) -> u64 {
    super::admin_sql(format!(
        "ALTER DATABASE {database} SET log_min_duration_statement = 0"
    ))
    .await
    .expect("log the statements' durations");
    std::fs::metadata(server_log()).map_or(0, |m| m.len())
}

/// What the server logged since `offset` (a length of its log, as [`start`] returns).
pub fn since(offset: u64) -> String {
    let mut text = String::new();
    let mut file = std::fs::File::open(server_log()).expect("open the server log");
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.read_to_string(&mut text).expect("read the server log");
    text
}

/// One statement text's share: how often, and the milliseconds summed over its phases.
pub struct Share {
    pub statement: String,
    pub count: u64,
    pub total_ms: f64,
}

/// The statements `database` ran since `offset`, summed per text (its first 90
/// characters, whitespace collapsed), the costliest first.
pub fn shares(database: &str, offset: u64) -> Vec<Share> {
    let text = since(offset);
    let marker = format!("@{database} LOG:  duration: ");
    let mut totals: HashMap<String, (u64, f64)> = HashMap::new();
    for line in text.lines() {
        let Some(at) = line.find(&marker) else {
            continue;
        };
        let rest = &line[at + marker.len()..];
        let Some((ms, statement)) = rest.split_once(" ms  ") else {
            continue;
        };
        let Ok(ms) = ms.parse::<f64>() else {
            continue;
        };
        // "execute sqlx_s_3: SELECT …", "parse <unnamed>: …", "statement: BEGIN".
        let phase_and_sql = statement.split_once(": ").map_or(statement, |(_, sql)| sql);
        let key: String = phase_and_sql
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(90)
            .collect();
        let entry = totals.entry(key).or_default();
        let is_execute = statement.starts_with("execute") || statement.starts_with("statement");
        entry.0 += u64::from(is_execute);
        entry.1 += ms;
    }
    let mut shares: Vec<Share> = totals
        .into_iter()
        .map(|(statement, (count, total_ms))| Share {
            statement,
            count,
            total_ms,
        })
        .collect();
    shares.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    shares
}

/// Prints the costliest dozen of `shares` as a table titled `title`.
pub fn print(title: &str, shares: &[Share]) {
    let logged: f64 = shares.iter().map(|share| share.total_ms).sum();
    let mut table = super::Table::new(
        &format!(
            "{title}: time in the server by statement (log_min_duration_statement = 0), \
             {:.1} s logged",
            logged / 1000.0
        ),
        &[
            "statement (first 90 characters)",
            "executions",
            "ms (parse+bind+execute)",
            "share",
        ],
    );
    for share in shares.iter().take(12) {
        table.row(vec![
            share.statement.clone(),
            super::thousands(share.count as f64),
            format!("{:.0}", share.total_ms),
            format!("{:.0}%", 100.0 * share.total_ms / logged),
        ]);
    }
    table.print();
}
