//! JSON from outside (REST bodies, console lines, stored documents) parsed strictly: an object that names a key
//! twice is refused with the key's path. serde_json keeps the last duplicate silently, so
//! `{"mqtt":{...},"mqtt":{...}}` would drop half of what a person sent without a word.

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a JSON text was refused: where (`$` is the whole document, else a dotted path) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Dotted path of the offending key (`mqtt.tls`), or `$` for a syntax error.
    pub path: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path == "$" {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Parses `text` as one JSON value, refusing duplicate object keys.
pub fn parse_unique(text: &[u8]) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = Unique { path: "" }.deserialize(&mut de).map_err(|e| {
        let message = e.to_string();
        // A duplicate is reported by the visitor as "duplicate key at <path>" (serde adds the position).
        match message.strip_prefix(DUPLICATE) {
            Some(rest) => {
                let path = rest.split(" at line ").next().unwrap_or(rest);
                JsonError {
                    path: path.to_string(),
                    message: "key given twice in one object".to_string(),
                }
            }
            None => JsonError {
                path: "$".to_string(),
                message,
            },
        }
    })?;
    de.end().map_err(|e| JsonError {
        path: "$".to_string(),
        message: e.to_string(),
    })?;
    Ok(value)
}

const DUPLICATE: &str = "duplicate key ";

/// A value whose objects are checked for duplicate keys; `path` is where it sits in the document.
struct Unique<'p> {
    path: &'p str,
}

impl Unique<'_> {
    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
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
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = alloc::vec::Vec::new();
        loop {
            let path = format!("{}[{}]", self.path, items.len());
            match seq.next_element_seed(Unique { path: &path })? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = self.child(&key);
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("{DUPLICATE}{path}")));
            }
            let value = map.next_value_seed(Unique { path: &path })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_document_without_duplicates_parses_as_serde_json_would() {
        let text = br#"{"a":{"b":[1,-2,3.5,"x",null,true,{"c":{}}]},"d":"\u00e9"}"#;
        let expected: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(parse_unique(text), Ok(expected));
    }

    #[test]
    fn a_duplicate_key_is_refused_with_its_path() {
        let e = parse_unique(br#"{"mqtt":{"uri":"a"},"mqtt":{"uri":"b"}}"#).unwrap_err();
        assert_eq!(e.path, "mqtt");
        let e =
            parse_unique(br#"{"gpio":{"gpiopin":[{"pinmode":"a"},{"x":1,"x":2}]}}"#).unwrap_err();
        assert_eq!(e.path, "gpio.gpiopin[1].x");
        assert_eq!(
            e.to_string(),
            "gpio.gpiopin[1].x: key given twice in one object"
        );
    }

    #[test]
    fn the_same_key_in_different_objects_is_fine() {
        let v = parse_unique(br#"{"a":{"x":1},"b":{"x":2}}"#).unwrap();
        assert_eq!(v, json!({"a":{"x":1},"b":{"x":2}}));
    }

    #[test]
    fn syntax_errors_and_trailing_text_are_refused_at_the_root() {
        assert_eq!(parse_unique(b"{\"a\":").unwrap_err().path, "$");
        assert_eq!(parse_unique(b"{} {}").unwrap_err().path, "$");
        assert!(parse_unique(b"").is_err());
    }
}
