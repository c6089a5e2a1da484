//! GGUF metadata values and typed access to them.
//!
//! Arrays keep their element type (`Vec<f32>`, `Vec<String>` …) rather than a vector of tagged
//! values, so a 150k-entry vocabulary costs what its data costs and getters can hand out slices.
//! Integer getters accept any integer type whose value fits: converters disagree on whether a
//! count is u32, i32 or u64.

use std::collections::BTreeMap;

use crate::weights::error::{Result, WeightError};

#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(GgufArray),
}

#[derive(Debug, Clone, PartialEq)]
pub enum GgufArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<GgufArray>),
}

impl GgufArray {
    pub fn len(&self) -> usize {
        match self {
            GgufArray::U8(v) => v.len(),
            GgufArray::I8(v) => v.len(),
            GgufArray::U16(v) => v.len(),
            GgufArray::I16(v) => v.len(),
            GgufArray::U32(v) => v.len(),
            GgufArray::I32(v) => v.len(),
            GgufArray::U64(v) => v.len(),
            GgufArray::I64(v) => v.len(),
            GgufArray::F32(v) => v.len(),
            GgufArray::F64(v) => v.len(),
            GgufArray::Bool(v) => v.len(),
            GgufArray::String(v) => v.len(),
            GgufArray::Array(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn type_name(&self) -> String {
        let elem = match self {
            GgufArray::U8(_) => "u8",
            GgufArray::I8(_) => "i8",
            GgufArray::U16(_) => "u16",
            GgufArray::I16(_) => "i16",
            GgufArray::U32(_) => "u32",
            GgufArray::I32(_) => "i32",
            GgufArray::U64(_) => "u64",
            GgufArray::I64(_) => "i64",
            GgufArray::F32(_) => "f32",
            GgufArray::F64(_) => "f64",
            GgufArray::Bool(_) => "bool",
            GgufArray::String(_) => "string",
            GgufArray::Array(_) => "array",
        };
        format!("array of {elem}")
    }
}

impl GgufValue {
    /// The value as an `i128` when it is an integer of any width (lossless for all of them).
    pub fn as_int(&self) -> Option<i128> {
        Some(match *self {
            GgufValue::U8(v) => v.into(),
            GgufValue::I8(v) => v.into(),
            GgufValue::U16(v) => v.into(),
            GgufValue::I16(v) => v.into(),
            GgufValue::U32(v) => v.into(),
            GgufValue::I32(v) => v.into(),
            GgufValue::U64(v) => v.into(),
            GgufValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    pub fn type_name(&self) -> String {
        match self {
            GgufValue::U8(_) => "u8".into(),
            GgufValue::I8(_) => "i8".into(),
            GgufValue::U16(_) => "u16".into(),
            GgufValue::I16(_) => "i16".into(),
            GgufValue::U32(_) => "u32".into(),
            GgufValue::I32(_) => "i32".into(),
            GgufValue::U64(_) => "u64".into(),
            GgufValue::I64(_) => "i64".into(),
            GgufValue::F32(_) => "f32".into(),
            GgufValue::F64(_) => "f64".into(),
            GgufValue::Bool(_) => "bool".into(),
            GgufValue::String(_) => "string".into(),
            GgufValue::Array(a) => a.type_name(),
        }
    }
}

/// The key/value section of a GGUF file.
#[derive(Debug, Clone, Default)]
pub struct GgufMetadata {
    map: BTreeMap<String, GgufValue>,
}

impl GgufMetadata {
    pub(crate) fn insert(&mut self, key: String, value: GgufValue) -> bool {
        self.map.insert(key, value).is_none()
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.map.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// `general.architecture` (e.g. `llama`, `qwen2`), the prefix of the model's keys.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// Applies `pick` to the value at `key`: `Ok(None)` when absent, an error naming the key and
    /// both types when present but of another type.
    fn typed<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        pick: impl Fn(&'a GgufValue) -> Option<T>,
    ) -> Result<Option<T>> {
        let Some(v) = self.map.get(key) else {
            return Ok(None);
        };
        pick(v).map(Some).ok_or_else(|| WeightError::MetadataType {
            key: key.to_string(),
            expected,
            found: match v.as_int() {
                Some(i) => format!("{} {i}", v.type_name()),
                None => v.type_name(),
            },
        })
    }
}

fn required<T>(key: &str, v: Result<Option<T>>) -> Result<T> {
    v?.ok_or_else(|| WeightError::MissingMetadata {
        key: key.to_string(),
    })
}

/// Defines `get_x` (absent → [`WeightError::MissingMetadata`]) and `opt_x` (absent → `None`);
/// both fail with [`WeightError::MetadataType`] on a value of another type.
macro_rules! getters {
    ($($get:ident, $opt:ident, $ty:ty, $expected:literal, $pick:expr;)*) => {
        impl GgufMetadata {
            $(
                pub fn $opt(&self, key: &str) -> Result<Option<$ty>> {
                    self.typed(key, $expected, $pick)
                }

                pub fn $get(&self, key: &str) -> Result<$ty> {
                    required(key, self.$opt(key))
                }
            )*
        }
    };
}

getters! {
    get_u32, opt_u32, u32, "an integer in u32 range", |v| v.as_int().and_then(|i| u32::try_from(i).ok());
    get_u64, opt_u64, u64, "an integer in u64 range", |v| v.as_int().and_then(|i| u64::try_from(i).ok());
    get_i64, opt_i64, i64, "an integer in i64 range", |v| v.as_int().and_then(|i| i64::try_from(i).ok());
    get_usize, opt_usize, usize, "a non-negative integer", |v| v.as_int().and_then(|i| usize::try_from(i).ok());
    get_f32, opt_f32, f32, "a float", |v| match *v {
        GgufValue::F32(x) => Some(x),
        GgufValue::F64(x) => Some(x as f32),
        _ => None,
    };
    get_f64, opt_f64, f64, "a float", |v| match *v {
        GgufValue::F32(x) => Some(f64::from(x)),
        GgufValue::F64(x) => Some(x),
        _ => None,
    };
    get_bool, opt_bool, bool, "a bool", |v| match *v {
        GgufValue::Bool(b) => Some(b),
        _ => None,
    };
    get_str, opt_str, &str, "a string", |v| match v {
        GgufValue::String(s) => Some(s.as_str()),
        _ => None,
    };
    get_array, opt_array, &GgufArray, "an array", |v| match v {
        GgufValue::Array(a) => Some(a),
        _ => None,
    };
    get_str_array, opt_str_array, &[String], "an array of string", |v| match v {
        GgufValue::Array(GgufArray::String(a)) => Some(a.as_slice()),
        _ => None,
    };
    get_f32_array, opt_f32_array, &[f32], "an array of f32", |v| match v {
        GgufValue::Array(GgufArray::F32(a)) => Some(a.as_slice()),
        _ => None,
    };
    get_i32_array, opt_i32_array, &[i32], "an array of i32", |v| match v {
        GgufValue::Array(GgufArray::I32(a)) => Some(a.as_slice()),
        _ => None,
    };
    get_u32_array, opt_u32_array, &[u32], "an array of u32", |v| match v {
        GgufValue::Array(GgufArray::U32(a)) => Some(a.as_slice()),
        _ => None,
    };
}
