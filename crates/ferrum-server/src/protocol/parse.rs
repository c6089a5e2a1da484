//! Lenient, precise request parsing: a JSON object is read into typed field structs, unknown
//! fields are collected (to be logged, never rejected), and a wrong type is a 400 that names
//! the field by its path (`messages[2].content`, `temperature`).
//!
//! Invariants:
//! - Several structs may read the same object (shared sampling fields plus endpoint fields);
//!   a key is "unknown" only when none of them declares it.
//! - The declared names come from serde's own derive output (the field list it hands to
//!   `deserialize_struct`), so they cannot drift from the structs.

use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Deserializes `T` from `body` (a JSON object), naming the offending field on failure.
pub fn read_fields<T: DeserializeOwned>(body: &Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize::<_, T>(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path.is_empty() || path == "." {
            ApiError::bad_request(format!("invalid request: {inner}"))
        } else {
            ApiError::invalid(path.clone(), format!("invalid `{path}`: {inner}"))
        }
    })
}

/// Keys of `object` that none of `declared` lists.
pub fn unknown_keys(object: &Map<String, Value>, declared: &[&[&str]]) -> Vec<String> {
    object
        .keys()
        .filter(|k| !declared.iter().any(|fields| fields.contains(&k.as_str())))
        .cloned()
        .collect()
}

/// The field names serde's derive declared for `T`.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut probe = Probe(None);
    let _ = T::deserialize(&mut probe);
    probe.0.unwrap_or(&[])
}

/// A deserializer that only records the field list of the struct asked of it.
struct Probe(Option<&'static [&'static str]>);

#[derive(Debug)]
struct ProbeDone;

impl std::fmt::Display for ProbeDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probe")
    }
}

impl std::error::Error for ProbeDone {}

impl de::Error for ProbeDone {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        ProbeDone
    }
}

impl<'de> de::Deserializer<'de> for &mut Probe {
    type Error = ProbeDone;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, ProbeDone> {
        Err(ProbeDone)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeDone> {
        self.0 = Some(fields);
        Err(ProbeDone)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct A {
        temperature: Option<f64>,
        #[serde(default)]
        n: Option<i64>,
    }

    #[test]
    fn field_names_come_from_serde() {
        assert_eq!(field_names::<A>(), ["temperature", "n"]);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let v: Value = serde_json::json!({"temperature": "hot", "extra": 1});
        let e = read_fields::<A>(&v).err().expect("error");
        assert_eq!(e.param(), Some("temperature"));
        let m = v.as_object().expect("object");
        assert_eq!(unknown_keys(m, &[field_names::<A>()]), ["extra"]);
    }
}
