//! The moves of a user's status (`pending`, `active`, `locked`, `deactivated`), each an
//! UPDATE guarded by the status it leaves, audited only when it changed the row.

use super::UserRow;
use crate::domain::user::LockReason;
use crate::store::audit::{AuditStamp, record};
use crate::store::{StoreError, Tx, execute};

/// `pending -> active`: confirmed now; the idle clock starts now, and so does the count of
/// failed sign-ins (failures while pending were someone guessing at a password the user had
/// not yet chosen; one typo after confirming must not lock). Returns whether it changed.
pub async fn confirm(tx: &mut Tx, stamp: &AuditStamp, user_id: i64) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE users SET status = 'active', confirmed_at = $2, last_activity_at = $2,
                          failed_logins = 0, updated_at = $2
          WHERE id = $1 AND status = 'pending'",
        user_id,
        stamp.at
    )? == 1;
    if changed {
        audit_status(tx, stamp, user_id, "pending", "active", "confirmed", None).await?;
    }
    Ok(changed)
}

/// `active -> locked` for `reason`. Returns whether this call locked the user.
pub async fn lock(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
    reason: LockReason,
) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE users SET status = 'locked', lock_reason = $2, updated_at = $3
          WHERE id = $1 AND status = 'active'",
        user_id,
        reason.as_str(),
        stamp.at
    )? == 1;
    if changed {
        let extra = serde_json::json!({ "lock_reason": reason.as_str() });
        audit_status(
            tx,
            stamp,
            user_id,
            "active",
            "locked",
            "locked",
            Some(extra),
        )
        .await?;
    }
    Ok(changed)
}

/// `locked -> active`, the failure counter reset; with `fresh_activity_clock` the idle
/// clock restarts now. Returns whether this call unlocked the user.
pub async fn unlock(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user: &UserRow,
    fresh_activity_clock: bool,
) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE users SET status = 'active', lock_reason = NULL, failed_logins = 0,
                          last_activity_at = CASE WHEN $3 THEN $2 ELSE last_activity_at END,
                          updated_at = $2
          WHERE id = $1 AND status = 'locked'",
        user.id,
        stamp.at,
        fresh_activity_clock
    )? == 1;
    if changed {
        let extra = serde_json::json!({ "lock_reason": user.lock_reason });
        audit_status(
            tx,
            stamp,
            user.id,
            "locked",
            "active",
            "unlocked",
            Some(extra),
        )
        .await?;
    }
    Ok(changed)
}

/// `deactivated -> active`: able to sign in again, failure counter reset, idle clock
/// restarted. Nothing else is restored. Returns whether this call reactivated the user.
pub async fn reactivate(tx: &mut Tx, stamp: &AuditStamp, user_id: i64) -> Result<bool, StoreError> {
    let changed = execute!(
        tx,
        "UPDATE users SET status = 'active', deactivated_at = NULL, lock_reason = NULL,
                          failed_logins = 0, last_activity_at = $2, updated_at = $2
          WHERE id = $1 AND status = 'deactivated'",
        user_id,
        stamp.at
    )? == 1;
    if changed {
        audit_status(
            tx,
            stamp,
            user_id,
            "deactivated",
            "active",
            "reactivated",
            None,
        )
        .await?;
    }
    Ok(changed)
}

async fn audit_status(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
    from: &str,
    to: &str,
    action: &str,
    extra: Option<serde_json::Value>,
) -> Result<(), StoreError> {
    let mut detail = serde_json::json!({ "status": { "from": from, "to": to } });
    if let (Some(serde_json::Value::Object(extra)), Some(detail)) = (extra, detail.as_object_mut())
    {
        detail.extend(extra);
    }
    record(tx, stamp, "user", user_id, action, &detail.to_string()).await
}

/// `-> deactivated`: the user can no longer log in.
pub async fn mark_deactivated(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user: &UserRow,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "UPDATE users SET status = 'deactivated', deactivated_at = $1, updated_at = $1
          WHERE id = $2",
        stamp.at,
        user.id
    )?;
    let detail = serde_json::json!({ "status": { "from": user.status, "to": "deactivated" } });
    record(
        tx,
        stamp,
        "user",
        user.id,
        "deactivated",
        &detail.to_string(),
    )
    .await
}
