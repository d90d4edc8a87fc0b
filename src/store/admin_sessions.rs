//! The dashboard's sessions (held as digests of their tokens) and failed sign-ins.

use super::{Store, StoreError, execute, fetch_optional, fetch_scalar};

pub async fn create(
    store: &Store,
    token_sha256: &str,
    operator: &str,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    // Expired sessions go as new ones come: the table stays the size of the live ones.
    execute!(
        &mut tx,
        "DELETE FROM admin_sessions WHERE expires_at_ms <= $1",
        now_ms
    )?;
    execute!(
        &mut tx,
        "INSERT INTO admin_sessions (token_sha256, operator, created_at_ms, expires_at_ms)
         VALUES ($1, $2, $3, $4)",
        token_sha256,
        operator,
        now_ms,
        expires_at_ms
    )?;
    tx.commit().await
}

/// The operator of a live session.
pub async fn operator_of(
    store: &Store,
    token_sha256: &str,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    let mut tx = store.begin_read().await?;
    let operator: Option<(String,)> = fetch_optional!(
        &mut tx,
        (String,),
        "SELECT operator FROM admin_sessions WHERE token_sha256 = $1 AND expires_at_ms > $2",
        token_sha256,
        now_ms
    )?;
    tx.commit().await?;
    Ok(operator.map(|(name,)| name))
}

pub async fn delete(store: &Store, token_sha256: &str) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    execute!(
        &mut tx,
        "DELETE FROM admin_sessions WHERE token_sha256 = $1",
        token_sha256
    )?;
    tx.commit().await
}

/// Failed sign-ins of `subject` (a name or an address, per `scope`) since `since_ms`.
pub async fn failures_since(
    store: &Store,
    scope: &str,
    subject: &str,
    since_ms: i64,
) -> Result<i64, StoreError> {
    let mut tx = store.begin_read().await?;
    let count = fetch_scalar!(
        &mut tx,
        "SELECT COUNT(*) FROM admin_login_failures
          WHERE scope = $1 AND subject = $2 AND at_ms >= $3",
        scope,
        subject,
        since_ms
    )?;
    tx.commit().await?;
    Ok(count)
}

/// Records a failed sign-in against the name and the address, and forgets failures older
/// than `forget_before_ms`.
pub async fn record_failure(
    store: &Store,
    name: &str,
    address: &str,
    now_ms: i64,
    forget_before_ms: i64,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    execute!(
        &mut tx,
        "DELETE FROM admin_login_failures WHERE at_ms < $1",
        forget_before_ms
    )?;
    for (scope, subject) in [("name", name), ("address", address)] {
        execute!(
            &mut tx,
            "INSERT INTO admin_login_failures (scope, subject, at_ms) VALUES ($1, $2, $3)",
            scope,
            subject,
            now_ms
        )?;
    }
    tx.commit().await
}
