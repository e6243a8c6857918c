//! JSON decoding that refuses duplicate keys, as TOML does.
//!
//! serde_json keeps the last of two equal keys in an object, so a JSON
//! definition with `"timeout"` written twice would silently run with the
//! second value; a TOML definition with the same mistake is refused. This
//! decoder builds the same [`Value`] and fails at the second key, with the
//! line and column serde_json reports.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Parses `text` as JSON, refusing any object with a repeated key.
pub(crate) fn from_str(text: &str) -> serde_json::Result<Value> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Strict::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value.0)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}` (a key may appear once in an object)")));
            }
            let Strict(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn duplicate_keys_are_refused_with_their_line() {
        let error = super::from_str("{\n  \"a\": 1,\n  \"a\": 2\n}").unwrap_err();
        assert!(error.to_string().contains("duplicate key `a`"), "{error}");
        assert_eq!(error.line(), 3);
        let nested = super::from_str(r#"{"p": [{"id": "x", "id": "y"}]}"#).unwrap_err();
        assert!(nested.to_string().contains("duplicate key `id`"), "{nested}");
        let value = super::from_str(r#"{"a": [1, 2.5, "s", null, true, {"b": {}}]}"#).expect("valid JSON");
        assert_eq!(value, serde_json::json!({"a": [1, 2.5, "s", null, true, {"b": {}}]}));
    }
}
