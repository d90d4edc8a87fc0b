use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::InvalidPayload;

/// On whose behalf a job runs: an administrator (a user id) or the system itself
/// (billing, cron, another service acting on its own authority).
///
/// Serialized as the string `"system"` or as the user's id number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The platform itself; subject to no per-user permission check.
    System,
    /// A user of the same account, who must be active and allowed to manage users.
    User(i64),
}

impl Actor {
    /// The user id, when the actor is a user.
    pub fn user_id(self) -> Option<i64> {
        match self {
            Actor::System => None,
            Actor::User(id) => Some(id),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::System => f.write_str("system"),
            Actor::User(id) => write!(f, "user:{id}"),
        }
    }
}

impl FromStr for Actor {
    type Err = InvalidPayload;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("system") {
            return Ok(Actor::System);
        }
        let id_text = text.strip_prefix("user:").unwrap_or(text);
        match id_text.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Actor::User(id)),
            _ => Err(InvalidPayload::new(
                "actor",
                format!("must be \"system\" or a positive user id, not {text:?}"),
            )),
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Actor::System => serializer.serialize_str("system"),
            Actor::User(id) => serializer.serialize_i64(*id),
        }
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Id(i64),
            Text(String),
        }
        let invalid = |shown: String| {
            serde::de::Error::custom(format!(
                "actor must be \"system\" or a positive user id, not {shown}"
            ))
        };
        match Wire::deserialize(deserializer)
            .map_err(|_| invalid("a value of another type".into()))?
        {
            Wire::Id(id) if id > 0 => Ok(Actor::User(id)),
            Wire::Id(id) => Err(invalid(id.to_string())),
            Wire::Text(text) => text.parse().map_err(|_| invalid(format!("{text:?}"))),
        }
    }
}

/// The schema follows the hand-written serde form above: `"system"` or a positive id, so
/// it is written by hand too (a derive would describe the Rust enum, not the wire form).
#[cfg(feature = "utoipa")]
impl utoipa::PartialSchema for Actor {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .description(Some(
                "On whose behalf the job runs: \"system\" or the id of an administrator",
            ))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["system"])),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                        utoipa::openapi::schema::KnownFormat::Int64,
                    )))
                    .minimum(Some(crate::MIN_ID as isize))
                    .maximum(Some(i64::MAX as isize)),
            )
            .into()
    }
}

#[cfg(feature = "utoipa")]
impl utoipa::ToSchema for Actor {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_and_user_round_trip() {
        for actor in [Actor::System, Actor::User(9)] {
            let json = serde_json::to_string(&actor).unwrap();
            assert_eq!(serde_json::from_str::<Actor>(&json).unwrap(), actor);
        }
        assert_eq!(serde_json::to_string(&Actor::System).unwrap(), "\"system\"");
        assert_eq!(serde_json::to_string(&Actor::User(9)).unwrap(), "9");
    }

    #[test]
    fn rejects_non_positive_ids_and_other_words() {
        assert!(serde_json::from_str::<Actor>("0").is_err());
        assert!(serde_json::from_str::<Actor>("-3").is_err());
        assert!(serde_json::from_str::<Actor>("\"admin\"").is_err());
        assert!(serde_json::from_str::<Actor>("true").is_err());
        assert_eq!("user:5".parse::<Actor>().unwrap(), Actor::User(5));
    }
}
