//! Sign-ins and activity: the failure count the lockout reads and the idle clock.

use chrono::{DateTime, Utc};

use crate::store::{StoreError, Tx, execute, fetch_scalar};

/// One more consecutive failed sign-in; returns the new count. Atomic, so concurrent
/// reports all count.
pub async fn count_failed_login(tx: &mut Tx, user_id: i64) -> Result<i32, StoreError> {
    fetch_scalar!(
        tx,
        "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
        user_id
    )
}

/// A successful sign-in: the failure count resets; last login and activity move forward.
pub async fn record_successful_login(
    tx: &mut Tx,
    user_id: i64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "UPDATE users SET failed_logins = 0,
                last_login_at = CASE WHEN last_login_at IS NULL OR last_login_at < $2
                                     THEN $2 ELSE last_login_at END,
                last_activity_at = CASE WHEN last_activity_at IS NULL OR last_activity_at < $2
                                        THEN $2 ELSE last_activity_at END
          WHERE id = $1",
        user_id,
        at
    )?;
    Ok(())
}

/// Moves the last-activity time forward to `at` (never back). Returns whether it moved.
pub async fn record_activity(
    tx: &mut Tx,
    user_id: i64,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let moved = execute!(
        tx,
        "UPDATE users SET last_activity_at = $2
          WHERE id = $1 AND (last_activity_at IS NULL OR last_activity_at < $2)",
        user_id,
        at
    )?;
    Ok(moved == 1)
}
