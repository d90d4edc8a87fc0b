//! A salesperson's records: playbook memberships, contacts and tasks. Every change is
//! set-based and writes its audit rows in the same statement batch.

use super::audit::AuditStamp;
use super::{StoreError, Tx, execute};

/// Why open tasks of a deactivated salesperson became transferable.
pub const TRANSFER_REASON_DEACTIVATED: &str = "User deactivated";

/// Closes every current playbook membership of the user. Returns how many.
pub async fn leave_all_playbooks(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
) -> Result<u64, StoreError> {
    execute!(
        tx,
        "INSERT INTO audit_log (account_id, actor, job_id, entity, entity_id, action, detail, at)
         SELECT $1, $2, $3, 'playbook_membership', m.id, 'removed',
                '{\"playbook_id\":' || m.playbook_id || ',\"user_id\":' || m.user_id || '}', $4
           FROM playbook_memberships m
          WHERE m.user_id = $5 AND m.removed_at IS NULL",
        stamp.account_id,
        stamp.actor.as_str(),
        stamp.job_id,
        stamp.at,
        user_id
    )?;
    execute!(
        tx,
        "UPDATE playbook_memberships SET removed_at = $1 WHERE user_id = $2 AND removed_at IS NULL",
        stamp.at,
        user_id
    )
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
    execute!(
        tx,
        "INSERT INTO audit_log (account_id, actor, job_id, entity, entity_id, action, detail, at)
         SELECT $1, $2, $3, 'contact', c.id, $4, $5, $6
           FROM contacts c WHERE c.assignee_id = $7 AND c.account_id = $1",
        stamp.account_id,
        stamp.actor.as_str(),
        stamp.job_id,
        action,
        detail.as_str(),
        stamp.at,
        from
    )?;
    execute!(
        tx,
        "UPDATE contacts SET assignee_id = $1 WHERE assignee_id = $2 AND account_id = $3",
        to,
        from,
        stamp.account_id
    )
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
    execute!(
        tx,
        "INSERT INTO audit_log (account_id, actor, job_id, entity, entity_id, action, detail, at)
         SELECT $1, $2, $3, 'task', t.id, 'made_transferable', $4, $5
           FROM tasks t
          WHERE t.assignee_id = $6 AND t.account_id = $1 AND t.state IN ('created', 'in_progress')",
        stamp.account_id,
        stamp.actor.as_str(),
        stamp.job_id,
        detail.as_str(),
        stamp.at,
        user_id
    )?;
    execute!(
        tx,
        "UPDATE tasks SET assignee_id = NULL, transferable = TRUE, transfer_reason = $1
          WHERE assignee_id = $2 AND account_id = $3 AND state IN ('created', 'in_progress')",
        reason,
        user_id,
        stamp.account_id
    )
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
    execute!(
        tx,
        "INSERT INTO audit_log (account_id, actor, job_id, entity, entity_id, action, detail, at)
         SELECT $1, $2, $3, 'opportunity', o.id, 'reassigned', $4, $5
           FROM opportunities o WHERE o.owner_id = $6 AND o.account_id = $1",
        stamp.account_id,
        stamp.actor.as_str(),
        stamp.job_id,
        detail.as_str(),
        stamp.at,
        from
    )?;
    execute!(
        tx,
        "UPDATE opportunities SET owner_id = $1 WHERE owner_id = $2 AND account_id = $3",
        to,
        from,
        stamp.account_id
    )
}

/// Moves the user's `created` and `in_progress` tasks to `to`; completed ones stay.
pub async fn reassign_open_tasks(
    tx: &mut Tx,
    stamp: &AuditStamp,
    from: i64,
    to: i64,
) -> Result<u64, StoreError> {
    let detail = serde_json::json!({ "from_user": from, "to_user": to }).to_string();
    execute!(
        tx,
        "INSERT INTO audit_log (account_id, actor, job_id, entity, entity_id, action, detail, at)
         SELECT $1, $2, $3, 'task', t.id, 'reassigned', $4, $5
           FROM tasks t
          WHERE t.assignee_id = $6 AND t.account_id = $1 AND t.state IN ('created', 'in_progress')",
        stamp.account_id,
        stamp.actor.as_str(),
        stamp.job_id,
        detail.as_str(),
        stamp.at,
        from
    )?;
    execute!(
        tx,
        "UPDATE tasks SET assignee_id = $1
          WHERE assignee_id = $2 AND account_id = $3 AND state IN ('created', 'in_progress')",
        to,
        from,
        stamp.account_id
    )
}

pub async fn count_opportunities(tx: &mut Tx, owner_id: i64) -> Result<i64, StoreError> {
    super::fetch_scalar!(
        tx,
        "SELECT COUNT(*) FROM opportunities WHERE owner_id = $1",
        owner_id
    )
}
