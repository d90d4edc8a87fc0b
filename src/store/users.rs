//! Users, as the guards and handlers read them.

use super::{StoreError, Tx, fetch_optional};
use crate::domain::user::{Person, UserStatus};

#[derive(Debug, Clone, sqlx::FromRow)]
struct PersonRow {
    id: i64,
    account_id: i64,
    status: String,
    rank: i32,
    can_manage_users: bool,
}

/// The user with their role's rank and whether they may manage users (by role, or by a
/// per-user override of the `users.manage` permission).
pub async fn find_person(tx: &mut Tx, user_id: i64) -> Result<Option<Person>, StoreError> {
    let row = fetch_optional!(
        tx,
        PersonRow,
        "SELECT u.id, u.account_id, u.status, r.rank,
                COALESCE(o.granted, r.can_manage_users) AS can_manage_users
           FROM users u
           JOIN roles r ON r.id = u.role_id
           LEFT JOIN user_permission_overrides o
                  ON o.user_id = u.id AND o.permission = 'users.manage'
          WHERE u.id = $1",
        user_id
    )?;
    Ok(row.map(|row| Person {
        id: row.id,
        account_id: row.account_id,
        status: UserStatus::parse(&row.status).unwrap_or(UserStatus::Deactivated),
        role_rank: row.rank,
        may_manage_users: row.can_manage_users,
    }))
}
