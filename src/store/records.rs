//! A salesperson's records: playbook memberships, contacts and tasks. Every change is
//! set-based: one UPDATE says which rows it changed, and exactly those are audited.

use super::audit::{AuditStamp, record_changed};
use super::{StoreError, Tx, fetch_all};

/// Why open tasks of a deactivated salesperson became transferable.
pub const TRANSFER_REASON_DEACTIVATED: &str = "User deactivated";

/// The ids a change returned, each with the one detail the change audits for all of them.
fn with_detail(ids: Vec<(i64,)>, detail: &str) -> Vec<(i64, String)> {
    ids.into_iter()
        .map(|(id,)| (id, detail.to_string()))
        .collect()
}

/// Closes every current playbook membership of the user. Returns how many.
pub async fn leave_all_playbooks(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
) -> Result<u64, StoreError> {
    let removed = fetch_all!(
        tx,
        (i64, String),
        "UPDATE playbook_memberships SET removed_at = $1 WHERE user_id = $2 AND removed_at IS NULL
         RETURNING id, '{\"playbook_id\":' || playbook_id || ',\"user_id\":' || user_id || '}'",
        stamp.at,
        user_id
    )?;
    record_changed(tx, stamp, "playbook_membership", "removed", &removed).await
}

/// Moves the user's contacts to `to` (`None`: unassigned). Returns how many.
pub async fn reassign_contacts(
    tx: &mut Tx,
    stamp: &AuditStamp,
    from: i64,
    to: Option<i64>,
) -> Result<u64, StoreError> {
    let action = if to.is_some() {
        "reassigned"
    } else {
        "unassigned"
    };
    let detail = serde_json::json!({ "from_user": from, "to_user": to }).to_string();
    let moved = fetch_all!(
        tx,
        (i64,),
        "UPDATE contacts SET assignee_id = $1 WHERE assignee_id = $2 AND account_id = $3
         RETURNING id",
        to,
        from,
        stamp.account_id
    )?;
    record_changed(tx, stamp, "contact", action, &with_detail(moved, &detail)).await
}

/// Unassigns the user's `created` and `in_progress` tasks and marks them transferable with
/// `reason`; completed tasks stay as they are. Returns how many.
pub async fn release_open_tasks(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
    reason: &str,
) -> Result<u64, StoreError> {
    let detail = serde_json::json!({ "from_user": user_id, "transfer_reason": reason }).to_string();
    let released = fetch_all!(
        tx,
        (i64,),
        "UPDATE tasks SET assignee_id = NULL, transferable = TRUE, transfer_reason = $1
          WHERE assignee_id = $2 AND account_id = $3 AND state IN ('created', 'in_progress')
          RETURNING id",
        reason,
        user_id,
        stamp.account_id
    )?;
    let released = with_detail(released, &detail);
    record_changed(tx, stamp, "task", "made_transferable", &released).await
}

/// What a user holds, counted: for the demo's before/after table and for operators.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Footprint {
    pub status: String,
    pub license_state: Option<String>,
    pub playbooks: i64,
    pub contacts: i64,
    pub open_tasks: i64,
    pub completed_tasks: i64,
    pub opportunities: i64,
}

pub async fn footprint(tx: &mut Tx, user_id: i64) -> Result<Option<Footprint>, StoreError> {
    super::fetch_optional!(
        tx,
        Footprint,
        "SELECT u.status,
                (SELECT l.state FROM salesperson_licenses l WHERE l.user_id = u.id
                  ORDER BY l.id DESC LIMIT 1) AS license_state,
                (SELECT COUNT(*) FROM playbook_memberships m
                  WHERE m.user_id = u.id AND m.removed_at IS NULL) AS playbooks,
                (SELECT COUNT(*) FROM contacts c WHERE c.assignee_id = u.id) AS contacts,
                (SELECT COUNT(*) FROM tasks t
                  WHERE t.assignee_id = u.id AND t.state IN ('created', 'in_progress')) AS open_tasks,
                (SELECT COUNT(*) FROM tasks t
                  WHERE t.assignee_id = u.id AND t.state = 'completed') AS completed_tasks,
                (SELECT COUNT(*) FROM opportunities o WHERE o.owner_id = u.id) AS opportunities
           FROM users u WHERE u.id = $1",
        user_id
    )
}

/// Moves the user's opportunities to `to`. Returns how many.
pub async fn reassign_opportunities(
    tx: &mut Tx,
    stamp: &AuditStamp,
    from: i64,
    to: i64,
) -> Result<u64, StoreError> {
    let detail = serde_json::json!({ "from_user": from, "to_user": to }).to_string();
    let moved = fetch_all!(
        tx,
        (i64,),
        "UPDATE opportunities SET owner_id = $1 WHERE owner_id = $2 AND account_id = $3
         RETURNING id",
        to,
        from,
        stamp.account_id
    )?;
    record_changed(
        tx,
        stamp,
        "opportunity",
        "reassigned",
        &with_detail(moved, &detail),
    )
    .await
}

/// Moves the user's `created` and `in_progress` tasks to `to`; completed ones stay.
pub async fn reassign_open_tasks(
    tx: &mut Tx,
    stamp: &AuditStamp,
    from: i64,
    to: i64,
) -> Result<u64, StoreError> {
    let detail = serde_json::json!({ "from_user": from, "to_user": to }).to_string();
    let moved = fetch_all!(
        tx,
        (i64,),
        "UPDATE tasks SET assignee_id = $1
          WHERE assignee_id = $2 AND account_id = $3 AND state IN ('created', 'in_progress')
          RETURNING id",
        to,
        from,
        stamp.account_id
    )?;
    record_changed(
        tx,
        stamp,
        "task",
        "reassigned",
        &with_detail(moved, &detail),
    )
    .await
}

pub async fn count_opportunities(tx: &mut Tx, owner_id: i64) -> Result<i64, StoreError> {
    super::fetch_scalar!(
        tx,
        "SELECT COUNT(*) FROM opportunities WHERE owner_id = $1",
        owner_id
    )
}
