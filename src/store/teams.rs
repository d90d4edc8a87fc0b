//! Teams, their leaders and memberships.

use super::audit::{AuditStamp, record_changed};
use super::{StoreError, Tx, execute, fetch_all, fetch_optional};

/// Names of the teams `user_id` leads (G2 names them).
pub async fn led_team_names(tx: &mut Tx, user_id: i64) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = fetch_all!(
        tx,
        (String,),
        "SELECT name FROM teams WHERE leader_id = $1 ORDER BY created_at, id",
        user_id
    )?;
    Ok(rows.into_iter().map(|(name,)| name).collect())
}

/// The leader of the team the user joined first among their current teams.
pub async fn first_team_leader(tx: &mut Tx, user_id: i64) -> Result<Option<i64>, StoreError> {
    let row: Option<(i64,)> = fetch_optional!(
        tx,
        (i64,),
        "SELECT t.leader_id FROM team_memberships m JOIN teams t ON t.id = m.team_id
          WHERE m.user_id = $1 AND m.left_at IS NULL
          ORDER BY m.joined_at, m.id LIMIT 1",
        user_id
    )?;
    Ok(row.map(|(id,)| id))
}

/// The leader of the account's first team (earliest created).
pub async fn account_first_team_leader(
    tx: &mut Tx,
    account_id: i64,
) -> Result<Option<i64>, StoreError> {
    let row: Option<(i64,)> = fetch_optional!(
        tx,
        (i64,),
        "SELECT leader_id FROM teams WHERE account_id = $1 ORDER BY created_at, id LIMIT 1",
        account_id
    )?;
    Ok(row.map(|(id,)| id))
}

/// Closes every current team membership of the user. Returns how many.
pub async fn leave_all_teams(
    tx: &mut Tx,
    stamp: &AuditStamp,
    user_id: i64,
) -> Result<u64, StoreError> {
    let left = fetch_all!(
        tx,
        (i64, String),
        "UPDATE team_memberships SET left_at = $1 WHERE user_id = $2 AND left_at IS NULL
         RETURNING id, '{\"team_id\":' || team_id || ',\"user_id\":' || user_id || '}'",
        stamp.at,
        user_id
    )?;
    record_changed(tx, stamp, "team_membership", "left", &left).await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamRow {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
}

pub async fn find(tx: &mut Tx, team_id: i64) -> Result<Option<TeamRow>, StoreError> {
    fetch_optional!(
        tx,
        TeamRow,
        "SELECT id, account_id, name FROM teams WHERE id = $1",
        team_id
    )
}

/// The user joins the team now.
pub async fn join(
    tx: &mut Tx,
    stamp: &AuditStamp,
    team_id: i64,
    user_id: i64,
) -> Result<(), StoreError> {
    add_member(tx, team_id, user_id, stamp.at).await?;
    let detail = serde_json::json!({ "team_id": team_id });
    super::audit::record(
        tx,
        stamp,
        "user",
        user_id,
        "joined_team",
        &detail.to_string(),
    )
    .await
}

/// The membership row alone: [`join`] audits it as the job's change, and the CRM's rows
/// (`demo::crm_data`) insert it unaudited, as the CRM does.
pub async fn add_member(
    tx: &mut Tx,
    team_id: i64,
    user_id: i64,
    joined_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    execute!(
        tx,
        "INSERT INTO team_memberships (team_id, user_id, joined_at) VALUES ($1, $2, $3)",
        team_id,
        user_id,
        joined_at
    )?;
    Ok(())
}
