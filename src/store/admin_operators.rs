//! The dashboard's operators kept in the database (`admin_operators`), beside those of the
//! configuration file: a name, a role and the argon2id hash of the password.

use super::{Store, StoreError, execute, fetch_optional};
use crate::config::Operator;
use crate::domain::admin::Role;

/// Adds an operator; `false` when the name is taken (nothing changed).
pub async fn insert(store: &Store, operator: &Operator, now_ms: i64) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let inserted = execute!(
        &mut tx,
        "INSERT INTO admin_operators (name, role, password_hash, created_at_ms)
         VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        operator.name.as_str(),
        operator.role.as_str(),
        operator.password_hash.as_str(),
        now_ms
    )?;
    tx.commit().await?;
    Ok(inserted == 1)
}

/// Removes an operator and ends their sessions; `false` when there was none by that name.
pub async fn remove(store: &Store, name: &str) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let removed = execute!(&mut tx, "DELETE FROM admin_operators WHERE name = $1", name)?;
    if removed == 1 {
        execute!(
            &mut tx,
            "DELETE FROM admin_sessions WHERE operator = $1",
            name
        )?;
    }
    tx.commit().await?;
    Ok(removed == 1)
}

/// The operator of that name, if the table holds one.
pub async fn find(store: &Store, name: &str) -> Result<Option<Operator>, StoreError> {
    let mut tx = store.begin_read().await?;
    let row: Option<(String, String, String)> = fetch_optional!(
        &mut tx,
        (String, String, String),
        "SELECT name, role, password_hash FROM admin_operators WHERE name = $1",
        name
    )?;
    tx.commit().await?;
    // The table's CHECK admits only the two roles; anything else signs nobody in.
    Ok(row.and_then(|(name, role, password_hash)| {
        Role::parse(&role).map(|role| Operator {
            name,
            role,
            password_hash,
        })
    }))
}
