//! The dashboard's rules, without I/O: what each role may do, how long a failed sign-in is
//! held against a name or an address, and which parts of a payload an operator never sees.

use serde::Deserialize;

/// What a signed-in operator may do.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads and acts (retry).
    Operator,
    /// Reads only: sees no action, and every action is refused.
    Viewer,
}

impl Role {
    pub fn may_act(self) -> bool {
        matches!(self, Role::Operator)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "operator" => Some(Role::Operator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// Whether another sign-in may be tried, given the failures of a name or an address
/// within the window.
pub fn sign_in_allowed(recent_failures: i64, limit: u32) -> bool {
    recent_failures < i64::from(limit)
}

/// How long a failed sign-in waits before it is answered: longer with each recent failure
/// (a guesser gets fewer tries per second), capped so a page never hangs.
pub fn failure_delay_ms(recent_failures: i64) -> u64 {
    (250 * recent_failures.clamp(1, 8)) as u64
}

/// What an operator sees instead of a secret.
pub const MASK: &str = "••••••";

/// The payload as an operator may see it: every value under a key that names a secret
/// (`token`, `password`, `secret`) and every sealed value (`sha256:…`, see `Job::seal`)
/// replaced by [`MASK`], at any depth.
pub fn mask_payload(payload: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    fn is_secret_key(key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        ["token", "password", "secret"]
            .iter()
            .any(|word| key.contains(word))
    }
    match payload {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| {
                    let shown = if is_secret_key(key) && !value.is_null() {
                        Value::String(MASK.into())
                    } else {
                        mask_payload(value)
                    };
                    (key.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask_payload).collect()),
        Value::String(text) if text.starts_with("sha256:") => Value::String(MASK.into()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_masked_at_any_depth_and_the_rest_kept() {
        let payload = json!({
            "account_id": 1,
            "token": "sha256:abcdef",
            "nested": {"temporary_password": "hunter2", "list": ["sha256:00", "plain"]},
            "api_token": null,
            "first_name": "Ana"
        });
        assert_eq!(
            mask_payload(&payload),
            json!({
                "account_id": 1,
                "token": MASK,
                "nested": {"temporary_password": MASK, "list": [MASK, "plain"]},
                "api_token": null,
                "first_name": "Ana"
            })
        );
    }

    #[test]
    fn sign_ins_stop_at_the_limit_and_failures_slow_down() {
        assert!(sign_in_allowed(4, 5));
        assert!(!sign_in_allowed(5, 5));
        assert!(failure_delay_ms(1) < failure_delay_ms(3));
        assert_eq!(failure_delay_ms(100), failure_delay_ms(8));
    }

    #[test]
    fn only_operators_act() {
        assert!(Role::Operator.may_act());
        assert!(!Role::Viewer.may_act());
        assert_eq!(Role::parse("viewer"), Some(Role::Viewer));
        assert_eq!(Role::parse("admin"), None);
    }
}
