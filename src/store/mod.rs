//! The system of record: PostgreSQL in production, an SQLite file embedded. Both run the
//! same statements (written once, in the common dialect, with `$n` parameters) through
//! [`Store`] and [`Tx`]; where the dialects differ a statement names both.
//!
//! Every statement is parameterized; nothing is formatted from input.

pub mod access;
pub mod accounts;
pub mod admin;
pub mod admin_operators;
pub mod admin_sessions;
pub mod audit;
pub mod confirmation_links;
pub mod dashboard;
pub mod emails;
pub mod events;
pub mod ledger;
pub mod licenses;
pub mod outbox;
pub mod records;
pub mod schedule;
pub mod sweeps;
pub mod teams;
pub mod users;
pub mod workers;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, PgPool, SqlitePool};

/// Errors of the store: every one is an infrastructure failure, retried by the queue.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The first connection failed: the server is down, the address or the credentials are
    /// wrong, the SQLite file cannot be opened. Said at once, with the cause, rather than
    /// after the pool's acquire timeout as "pool timed out".
    #[error("cannot connect to the database at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("unsupported database url (expected postgres:// or sqlite:): {0}")]
    UnsupportedUrl(String),
    #[error("cannot create the folder of the SQLite file {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
}

/// Which SQL dialect a store speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// A subquery listing the ids of parameter `$param`, bound as [`json_ids`]: a set of
    /// ids is one text parameter, and the statement is the same whatever their number.
    pub(crate) fn ids_in(self, param: usize) -> String {
        match self {
            Dialect::Postgres => {
                format!("(SELECT value::int8 FROM jsonb_array_elements_text(${param}::jsonb))")
            }
            Dialect::Sqlite => format!("(SELECT value FROM json_each(${param}))"),
        }
    }
}

/// `ids` as the JSON array [`Dialect::ids_in`] reads.
pub(crate) fn json_ids(ids: &[i64]) -> String {
    serde_json::Value::from(ids).to_string()
}

/// A pool of connections to the system of record.
#[derive(Clone, Debug)]
pub enum Store {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// One open transaction: a job's effects all commit here, or none do.
pub enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Store {
    /// Connects to `url` (`postgres://…` or `sqlite:path`), creating the SQLite file and its
    /// folder when missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            // One connection first: the pool retries a refused connection until its acquire
            // timeout and then reports only that it timed out.
            connect_once(url, PgConnection::connect_with(&options)).await?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Store::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true);
            let path = options.get_filename();
            if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(folder).map_err(|source| StoreError::Folder {
                    path: folder.display().to_string(),
                    source,
                })?;
            }
            connect_once(url, SqliteConnection::connect_with(&options)).await?;
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            Ok(Store::Sqlite(pool))
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Store::Postgres(_) => Dialect::Postgres,
            Store::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Applies the migrations of this store's dialect.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
            Store::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
        }
        // SQLite's SQL folds ASCII only: the email keys of non-ASCII rows come from Rust.
        users::renormalize_emails(self).await?;
        Ok(())
    }

    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Store::Sqlite(pool) => {
                // Take the write lock up front: a deferred transaction that reads, then
                // writes, fails with SQLITE_BUSY when another writer got there in between.
                Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?)
            }
        })
    }

    /// A transaction for reading only. On SQLite it takes no write lock, so reads (job
    /// status, counts, health) never wait behind, or hold up, the writers.
    pub async fn begin_read(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Store::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
        })
    }

    pub async fn close(&self) {
        match self {
            Store::Postgres(pool) => pool.close().await,
            Store::Sqlite(pool) => pool.close().await,
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_read().await?;
        let _: i64 = fetch_scalar!(&mut tx, "SELECT CAST(1 AS BIGINT)")?;
        tx.rollback().await
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Postgres(tx) => tx.commit().await?,
            Tx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Tx::Postgres(tx) => tx.rollback().await?,
            Tx::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Tx::Postgres(_) => Dialect::Postgres,
            Tx::Sqlite(_) => Dialect::Sqlite,
        }
    }
}

/// How long the first connection may take: a host that drops packets would otherwise hold
/// the start for the system's TCP timeout (minutes).
const FIRST_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens one connection and closes it, turning a failure into [`StoreError::Connect`] with
/// the cause alone (`Connection refused (os error 111)`, `(code: 14) unable to open database
/// file`) and the URL without its password.
async fn connect_once<C: Connection>(
    url: &str,
    connect: impl Future<Output = Result<C, sqlx::Error>>,
) -> Result<(), StoreError> {
    let failed = |reason: String| StoreError::Connect {
        url: redact_url(url),
        reason,
    };
    match tokio::time::timeout(FIRST_CONNECT_TIMEOUT, connect).await {
        Err(_) => Err(failed(format!(
            "no answer within {} s",
            FIRST_CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Err(sqlx::Error::Io(error))) => Err(failed(error.to_string())),
        // The server's message alone (`database "crm" does not exist`).
        Ok(Err(sqlx::Error::Database(error))) => Err(failed(error.message().to_string())),
        Ok(Err(error)) => Err(failed(error.to_string())),
        Ok(Ok(connection)) => {
            // Closing politely is a courtesy; the pool opens its own connections.
            let _ = connection.close().await;
            Ok(())
        }
    }
}

/// Hides the password of a connection URL, so it can be shown in errors and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:[redacted]{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Runs a statement on a [`Tx`], returning the number of rows it changed.
macro_rules! execute {
    ($tx:expr, $sql:expr $(, $bind:expr)* $(,)?) => {{
        let result: Result<u64, $crate::store::StoreError> = match $tx {
            $crate::store::Tx::Postgres(tx) => sqlx::query($sql)$(.bind($bind))*
                .execute(&mut **tx).await.map(|r| r.rows_affected()).map_err(Into::into),
            $crate::store::Tx::Sqlite(tx) => sqlx::query($sql)$(.bind($bind))*
                .execute(&mut **tx).await.map(|r| r.rows_affected()).map_err(Into::into),
        };
        result
    }};
}

/// Fetches every row of a query on a [`Tx`] as `$row` (a `sqlx::FromRow` type).
macro_rules! fetch_all {
    ($tx:expr, $row:ty, $sql:expr $(, $bind:expr)* $(,)?) => {{
        let result: Result<Vec<$row>, $crate::store::StoreError> = match $tx {
            $crate::store::Tx::Postgres(tx) => sqlx::query_as::<_, $row>($sql)$(.bind($bind))*
                .fetch_all(&mut **tx).await.map_err(Into::into),
            $crate::store::Tx::Sqlite(tx) => sqlx::query_as::<_, $row>($sql)$(.bind($bind))*
                .fetch_all(&mut **tx).await.map_err(Into::into),
        };
        result
    }};
}

/// Fetches at most one row of a query on a [`Tx`] as `$row`.
macro_rules! fetch_optional {
    ($tx:expr, $row:ty, $sql:expr $(, $bind:expr)* $(,)?) => {{
        let result: Result<Option<$row>, $crate::store::StoreError> = match $tx {
            $crate::store::Tx::Postgres(tx) => sqlx::query_as::<_, $row>($sql)$(.bind($bind))*
                .fetch_optional(&mut **tx).await.map_err(Into::into),
            $crate::store::Tx::Sqlite(tx) => sqlx::query_as::<_, $row>($sql)$(.bind($bind))*
                .fetch_optional(&mut **tx).await.map_err(Into::into),
        };
        result
    }};
}

/// Fetches the single value of a one-row, one-column query on a [`Tx`].
macro_rules! fetch_scalar {
    ($tx:expr, $sql:expr $(, $bind:expr)* $(,)?) => {{
        match $tx {
            $crate::store::Tx::Postgres(tx) => sqlx::query_scalar($sql)$(.bind($bind))*
                .fetch_one(&mut **tx).await.map_err($crate::store::StoreError::from),
            $crate::store::Tx::Sqlite(tx) => sqlx::query_scalar($sql)$(.bind($bind))*
                .fetch_one(&mut **tx).await.map_err($crate::store::StoreError::from),
        }
    }};
}

pub(crate) use {execute, fetch_all, fetch_optional, fetch_scalar};

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/crm"),
            "postgres://app:[redacted]@db:5432/crm"
        );
        assert_eq!(
            redact_url("postgres://root@127.0.0.1/test"),
            "postgres://root@127.0.0.1/test"
        );
        assert_eq!(
            redact_url("sqlite:var/lifecycle.db"),
            "sqlite:var/lifecycle.db"
        );
    }
}
