//! A request body's object, only ever an object: serde also reads a struct from an array
//! of its fields in order (`[[]]` for a batch of no jobs, `["tok"]` for a token check), a
//! form the OpenAPI document does not allow and no client means to send.

use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// `T`, read from a JSON object and refused as anything else.
pub struct JsonObject<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(JsonObject)
    }
}

#[cfg(test)]
mod tests {
    use super::JsonObject;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Pair {
        kind: String,
        payload: Box<serde_json::value::RawValue>,
    }

    #[test]
    fn an_object_is_read_and_an_array_of_its_fields_refused() {
        let pair: JsonObject<Pair> =
            serde_json::from_str(r#"{"kind": "noop", "payload": {"a": 1}}"#).unwrap();
        assert_eq!(
            (pair.0.kind.as_str(), pair.0.payload.get()),
            ("noop", r#"{"a": 1}"#)
        );
        let refused = serde_json::from_str::<JsonObject<Pair>>(r#"["noop", {"a": 1}]"#);
        assert!(refused.is_err_and(|error| error.to_string().contains("expected a JSON object")));
        assert!(serde_json::from_str::<JsonObject<Pair>>(r#"{"kind": "x", "other": 1}"#).is_err());
    }
}
