//! The dashboard's settings (`[admin]`) and its operators (`[[admin.operators]]`), checked
//! when the configuration loads: a bad entry stops the service rather than letting nobody,
//! or the wrong person, in.

use serde::Deserialize;

use super::ConfigError;
use crate::domain::admin::Role;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Minutes a dashboard session lasts after its sign-in.
    pub session_ttl_mins: u32,
    /// Marks the session cookie `Secure` (sent over HTTPS only): on behind a TLS proxy.
    pub secure_cookies: bool,
    /// Failed sign-ins allowed per name and per address within the window; more are refused
    /// until the window has passed.
    pub login_failure_limit: u32,
    pub login_failure_window_mins: u32,
    /// Who may sign in; `lifecycle admin add-operator` prints an entry. Looked up before the
    /// operators kept in the database (`admin_operators`, `add-operator --store`).
    #[serde(default)]
    pub operators: Vec<Operator>,
}

/// One operator: a name, a role and the argon2id hash of the password (never the password).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    pub name: String,
    pub role: Role,
    /// The argon2id PHC string (`$argon2id$v=19$...`).
    pub password_hash: String,
}

impl AdminSettings {
    /// Refuses an operator without a valid argon2 hash, or a name given twice.
    pub fn check_operators(&self) -> Result<(), ConfigError> {
        let refused = |name: &str, why: &str| ConfigError::Operator(name.to_string(), why.into());
        for (index, operator) in self.operators.iter().enumerate() {
            if operator.name.trim().is_empty() {
                return Err(refused(&operator.name, "name must not be empty"));
            }
            if argon2::PasswordHash::new(&operator.password_hash).is_err()
                || !operator.password_hash.starts_with("$argon2")
            {
                return Err(refused(
                    &operator.name,
                    "password_hash must be an argon2 PHC string (lifecycle admin add-operator \
                     prints one)",
                ));
            }
            if self.operators[..index]
                .iter()
                .any(|other| other.name == operator.name)
            {
                return Err(refused(&operator.name, "listed twice"));
            }
        }
        Ok(())
    }

    pub fn operator(&self, name: &str) -> Option<&Operator> {
        self.operators.iter().find(|operator| operator.name == name)
    }
}
