//! Reader for one `.safetensors` file: `u64` LE header length, a JSON header, then raw data.
//!
//! Invariants (checked in [`SafetensorsFile::from_bytes`], before any tensor is handed out):
//! - The header length is at most [`MAX_HEADER_BYTES`] and fits inside the file.
//! - Every tensor's `data_offsets` lie inside the data section, `end - start` equals
//!   `numel × element size` (computed with overflow checks), and no two tensors overlap.
//! - Tensors of dtypes other than F32/F16/BF16 are validated like the rest but not listed;
//!   asking for one gives [`WeightError::UnknownDType`] naming it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use ferrum_backend::HostTensor;
use ferrum_types::DType;
use serde::Deserialize;

use super::bytes::FileBytes;
use super::error::{Result, WeightError};
use super::source::{TensorInfo, WeightSource};
use super::table::{check_overlaps, not_loadable, Span};

const FORMAT: &str = "safetensors";

/// Largest JSON header we accept; real headers are well under 10 MB even for 1000-tensor shards.
pub const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;

#[derive(Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

struct Entry {
    info: TensorInfo,
    /// Absolute byte range in the file.
    start: usize,
    len: usize,
}

pub struct SafetensorsFile {
    label: String,
    bytes: FileBytes,
    tensors: BTreeMap<String, Entry>,
    /// Valid tensors of dtypes we do not load: name → dtype string.
    unsupported: BTreeMap<String, String>,
}

impl SafetensorsFile {
    pub fn open(path: &Path) -> Result<Self> {
        let label = path.display().to_string();
        Self::from_bytes(FileBytes::map(path)?, label)
    }

    /// Parses and validates `bytes`; `label` names the file in messages.
    pub fn from_bytes(bytes: FileBytes, label: String) -> Result<Self> {
        let (tensors, unsupported) = parse(&bytes)?;
        Ok(SafetensorsFile {
            label,
            bytes,
            tensors,
            unsupported,
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }
}

type Parsed = (BTreeMap<String, Entry>, BTreeMap<String, String>);

/// Validates a whole safetensors buffer (header and every tensor's byte range).
fn parse(buf: &[u8]) -> Result<Parsed> {
    let (header, data_start) = read_header(buf)?;
    let data_len = (buf.len() - data_start) as u64;
    let mut tensors = BTreeMap::new();
    let mut unsupported = BTreeMap::new();
    let mut spans = Vec::with_capacity(header.len());
    for (name, value) in header {
        if name == "__metadata__" {
            continue;
        }
        let raw: RawEntry = serde_json::from_value(value)
            .map_err(|e| WeightError::header(FORMAT, format!("entry {name}: {e}")))?;
        let elem = element_size(&raw.dtype).ok_or_else(|| WeightError::UnknownDType {
            tensor: name.clone(),
            dtype: raw.dtype.clone(),
        })?;
        let numel = numel(&name, &raw.shape)?;
        let [start, end] = raw.data_offsets;
        if start > end || end > data_len {
            return Err(WeightError::OutOfBounds {
                tensor: name,
                start,
                end,
                len: data_len,
            });
        }
        let expected = numel
            .checked_mul(elem)
            .ok_or_else(|| too_big(&name, &raw.shape))?;
        let dtype = dense_dtype(&raw.dtype);
        if expected != end - start {
            return Err(WeightError::SizeMismatch {
                tensor: name,
                dtype: dtype.unwrap_or(DType::F32),
                shape: raw.shape.iter().map(|&d| d as usize).collect(),
                expected,
                got: end - start,
            });
        }
        spans.push(Span {
            name: name.clone(),
            start,
            end,
        });
        let Some(dtype) = dtype else {
            unsupported.insert(name, raw.dtype);
            continue;
        };
        let shape = raw.shape.iter().map(|&d| d as usize).collect();
        let entry = Entry {
            info: TensorInfo { dtype, shape },
            start: data_start + start as usize,
            len: (end - start) as usize,
        };
        tensors.insert(name, entry);
    }
    check_overlaps(spans)?;
    Ok((tensors, unsupported))
}

/// Splits off and parses the JSON header; returns it and where the data section starts.
pub fn read_header(buf: &[u8]) -> Result<(serde_json::Map<String, serde_json::Value>, usize)> {
    let Some(len_bytes) = buf.get(..8) else {
        return Err(truncated("header length", 0, 8, buf.len()));
    };
    let mut le = [0u8; 8];
    le.copy_from_slice(len_bytes);
    let n = u64::from_le_bytes(le);
    if n > MAX_HEADER_BYTES {
        return Err(WeightError::LimitExceeded {
            format: FORMAT,
            what: "header length".into(),
            value: n,
            limit: MAX_HEADER_BYTES,
        });
    }
    let rest = (buf.len() - 8) as u64;
    if n > rest {
        return Err(truncated("JSON header", 8, n, buf.len()));
    }
    let json = &buf[8..8 + n as usize];
    if json.first() != Some(&b'{') {
        return Err(WeightError::BadMagic {
            format: FORMAT,
            found: format!("{:?}", String::from_utf8_lossy(&json[..json.len().min(8)])),
        });
    }
    let header = serde_json::from_slice(json)
        .map_err(|e| WeightError::header(FORMAT, format!("JSON: {e}")))?;
    Ok((header, 8 + n as usize))
}

fn truncated(what: &str, offset: u64, needed: u64, len: usize) -> WeightError {
    WeightError::Truncated {
        format: FORMAT,
        what: what.into(),
        offset,
        needed,
        len: len as u64,
    }
}

fn too_big(name: &str, shape: &[u64]) -> WeightError {
    WeightError::BadShape {
        tensor: name.to_string(),
        shape: shape.to_vec(),
        reason: "element count overflows".into(),
    }
}

fn numel(name: &str, shape: &[u64]) -> Result<u64> {
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| usize::try_from(n).is_ok())
        .ok_or_else(|| too_big(name, shape))
}

/// Bytes per element of every dtype the safetensors format defines.
fn element_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" => 8,
        _ => return None,
    })
}

fn dense_dtype(dtype: &str) -> Option<DType> {
    match dtype {
        "F32" => Some(DType::F32),
        "F16" => Some(DType::F16),
        "BF16" => Some(DType::BF16),
        _ => None,
    }
}

impl WeightSource for SafetensorsFile {
    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn info(&self, name: &str) -> Option<TensorInfo> {
        self.tensors.get(name).map(|e| e.info.clone())
    }

    fn tensor(&self, name: &str) -> Result<HostTensor<'_>> {
        let Some(e) = self.tensors.get(name) else {
            return Err(not_loadable(name, &self.unsupported, &self.label));
        };
        Ok(HostTensor {
            dtype: e.info.dtype,
            shape: e.info.shape.clone(),
            data: Cow::Borrowed(&self.bytes[e.start..e.start + e.len]),
        })
    }

    fn total_bytes(&self) -> u64 {
        self.tensors.values().map(|e| e.len as u64).sum()
    }

    fn format(&self) -> &'static str {
        FORMAT
    }
}
