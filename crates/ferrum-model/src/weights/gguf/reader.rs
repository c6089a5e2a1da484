//! Parser for the GGUF header (v2 and v3, little-endian): magic, version, counts, metadata
//! key/values, tensor infos; then the aligned data section.
//!
//! Invariants (all checked in [`parse`]):
//! - Every count and length read from the file is bounded by the bytes left before anything is
//!   allocated for it, and arrays nest at most [`MAX_ARRAY_DEPTH`] deep.
//! - Every tensor of a type we load has whole blocks per row, an offset that is a multiple of
//!   the alignment, a byte range inside the data section, and no overlap with another tensor.
//! - `dims` are kept as stored, innermost first; [`GgufTensorInfo::shape`] reverses them.

use std::collections::HashSet;

use ferrum_types::DType;

use super::types::ggml_dtype;
use super::value::{GgufArray, GgufMetadata, GgufValue};
use crate::weights::bytes::Cursor;
use crate::weights::error::{Result, WeightError};
use crate::weights::table::{check_overlaps, Span};

const FORMAT: &str = "gguf";
pub const MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
pub const MAX_ARRAY_DEPTH: u32 = 8;
const MAX_DIMS: u32 = 4;
const MAX_COUNT: u64 = 1 << 24;

/// One tensor's entry in the header.
#[derive(Debug, Clone)]
pub struct GgufTensorInfo {
    pub name: String,
    /// Dimensions as stored: innermost first (ggml's `ne`).
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    /// Our dtype, or `None` for a ggml type we do not load.
    pub dtype: Option<DType>,
    /// Offset from the start of the data section.
    pub offset: u64,
    /// Byte size (0 when `dtype` is `None`).
    pub byte_len: u64,
}

impl GgufTensorInfo {
    /// Outermost-first shape (PyTorch order): a GGUF `[in, out]` weight is `[out, in]` here.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: GgufMetadata,
    pub tensors: Vec<GgufTensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_start: u64,
}

/// Parses and validates the header of a GGUF file held in `buf` (the whole file).
pub fn parse(buf: &[u8]) -> Result<GgufHeader> {
    let mut c = Cursor::new(buf, FORMAT);
    let magic = c.take(4, "magic").map_err(|_| WeightError::BadMagic {
        format: FORMAT,
        found: format!("{:02x?}", buf),
    })?;
    if magic != MAGIC {
        return Err(WeightError::BadMagic {
            format: FORMAT,
            found: format!("{:?}", String::from_utf8_lossy(magic)),
        });
    }
    let version = c.u32("version")?;
    if version != 2 && version != 3 {
        // Includes big-endian files, whose version reads byte-swapped here.
        return Err(WeightError::UnsupportedVersion {
            format: FORMAT,
            version: version.into(),
        });
    }
    let n_tensors = c.u64("tensor count")?;
    let n_kv = c.u64("metadata count")?;
    let n_kv = bounded(&c, n_kv, 8 + 4 + 1, "metadata count")?;
    let mut metadata = GgufMetadata::default();
    for _ in 0..n_kv {
        let key = read_string(&mut c, "metadata key")?;
        let ty = c.u32("metadata value type")?;
        let value = read_value(&mut c, ty, 0, &key)?;
        if !metadata.insert(key.clone(), value) {
            return Err(WeightError::header(FORMAT, format!("duplicate key {key}")));
        }
    }
    let alignment = metadata
        .opt_u64("general.alignment")?
        .unwrap_or(DEFAULT_ALIGNMENT);
    if !alignment.is_power_of_two() || alignment > 1 << 20 {
        return Err(WeightError::header(
            FORMAT,
            format!("general.alignment {alignment} is not a power of two up to 1 MiB"),
        ));
    }
    let n_tensors = bounded(&c, n_tensors, 8 + 4 + 4 + 8, "tensor count")?;
    let mut tensors = Vec::with_capacity(n_tensors.min(4096));
    let mut seen = HashSet::new();
    for _ in 0..n_tensors {
        let t = read_tensor_info(&mut c)?;
        if !seen.insert(t.name.clone()) {
            return Err(WeightError::header(
                FORMAT,
                format!("duplicate tensor {}", t.name),
            ));
        }
        tensors.push(t);
    }
    let data_start = (c.pos() as u64).next_multiple_of(alignment);
    check_ranges(
        &tensors,
        alignment,
        (buf.len() as u64).saturating_sub(data_start),
    )?;
    Ok(GgufHeader {
        version,
        metadata,
        tensors,
        alignment,
        data_start,
    })
}

/// `count` as a `usize`, once it is known that `count` items of `min_bytes` fit in the file.
fn bounded(c: &Cursor<'_>, count: u64, min_bytes: u64, what: &str) -> Result<usize> {
    if count > MAX_COUNT {
        return Err(WeightError::LimitExceeded {
            format: FORMAT,
            what: what.into(),
            value: count,
            limit: MAX_COUNT,
        });
    }
    c.bound_count(count, min_bytes, what)
}

fn read_string(c: &mut Cursor<'_>, what: &str) -> Result<String> {
    let len = c.u64(what)?;
    let bytes = c.take(len, what)?;
    // Invalid UTF-8 (seen in some vocabularies) is kept readable rather than rejected.
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn read_value(c: &mut Cursor<'_>, ty: u32, depth: u32, key: &str) -> Result<GgufValue> {
    Ok(match ty {
        0 => GgufValue::U8(c.u8(key)?),
        1 => GgufValue::I8(c.i8(key)?),
        2 => GgufValue::U16(c.u16(key)?),
        3 => GgufValue::I16(c.i16(key)?),
        4 => GgufValue::U32(c.u32(key)?),
        5 => GgufValue::I32(c.i32(key)?),
        6 => GgufValue::F32(c.f32(key)?),
        7 => GgufValue::Bool(read_bool(c, key)?),
        8 => GgufValue::String(read_string(c, key)?),
        9 => GgufValue::Array(read_array(c, depth, key)?),
        10 => GgufValue::U64(c.u64(key)?),
        11 => GgufValue::I64(c.i64(key)?),
        12 => GgufValue::F64(c.f64(key)?),
        other => {
            return Err(WeightError::header(
                FORMAT,
                format!("metadata {key}: unknown value type {other}"),
            ))
        }
    })
}

fn read_bool(c: &mut Cursor<'_>, key: &str) -> Result<bool> {
    match c.u8(key)? {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(WeightError::header(
            FORMAT,
            format!("metadata {key}: bool byte {b}"),
        )),
    }
}

/// Reads `n` fixed-size little-endian numbers in one bounds check.
fn numbers<const N: usize, T>(
    c: &mut Cursor<'_>,
    n: u64,
    key: &str,
    conv: fn([u8; N]) -> T,
) -> Result<Vec<T>> {
    let n = bounded(c, n, N as u64, key)?;
    let bytes = c.take((n * N) as u64, key)?;
    Ok(bytes
        .chunks_exact(N)
        .map(|ch| {
            let mut a = [0u8; N];
            a.copy_from_slice(ch);
            conv(a)
        })
        .collect())
}

fn read_array(c: &mut Cursor<'_>, depth: u32, key: &str) -> Result<GgufArray> {
    if depth >= MAX_ARRAY_DEPTH {
        return Err(WeightError::LimitExceeded {
            format: FORMAT,
            what: format!("array nesting of {key}"),
            value: (depth + 1).into(),
            limit: MAX_ARRAY_DEPTH.into(),
        });
    }
    let ty = c.u32(key)?;
    let n = c.u64(key)?;
    Ok(match ty {
        0 => GgufArray::U8(numbers(c, n, key, u8::from_le_bytes)?),
        1 => GgufArray::I8(numbers(c, n, key, i8::from_le_bytes)?),
        2 => GgufArray::U16(numbers(c, n, key, u16::from_le_bytes)?),
        3 => GgufArray::I16(numbers(c, n, key, i16::from_le_bytes)?),
        4 => GgufArray::U32(numbers(c, n, key, u32::from_le_bytes)?),
        5 => GgufArray::I32(numbers(c, n, key, i32::from_le_bytes)?),
        6 => GgufArray::F32(numbers(c, n, key, f32::from_le_bytes)?),
        10 => GgufArray::U64(numbers(c, n, key, u64::from_le_bytes)?),
        11 => GgufArray::I64(numbers(c, n, key, i64::from_le_bytes)?),
        12 => GgufArray::F64(numbers(c, n, key, f64::from_le_bytes)?),
        7 => {
            let n = bounded(c, n, 1, key)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_bool(c, key)?);
            }
            GgufArray::Bool(v)
        }
        8 => {
            let n = bounded(c, n, 8, key)?;
            let mut v = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                v.push(read_string(c, key)?);
            }
            GgufArray::String(v)
        }
        9 => {
            let n = bounded(c, n, 12, key)?;
            let mut v = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                v.push(read_array(c, depth + 1, key)?);
            }
            GgufArray::Array(v)
        }
        other => {
            return Err(WeightError::header(
                FORMAT,
                format!("metadata {key}: unknown array element type {other}"),
            ))
        }
    })
}

fn read_tensor_info(c: &mut Cursor<'_>) -> Result<GgufTensorInfo> {
    let name = read_string(c, "tensor name")?;
    let n_dims = c.u32("tensor rank")?;
    if n_dims > MAX_DIMS {
        return Err(WeightError::BadShape {
            tensor: name,
            shape: Vec::new(),
            reason: format!("{n_dims} dimensions, at most {MAX_DIMS} allowed"),
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(c.u64("tensor dimension")?);
    }
    let ggml_type = c.u32("tensor type")?;
    let offset = c.u64("tensor offset")?;
    let dtype = ggml_dtype(ggml_type);
    let byte_len = match dtype {
        Some(dtype) => byte_len(&name, &dims, dtype)?,
        None => 0,
    };
    Ok(GgufTensorInfo {
        name,
        dims,
        ggml_type,
        dtype,
        offset,
        byte_len,
    })
}

fn byte_len(name: &str, dims: &[u64], dtype: DType) -> Result<u64> {
    let bad = |reason: String| WeightError::BadShape {
        tensor: name.to_string(),
        shape: dims.iter().rev().copied().collect(),
        reason,
    };
    let numel = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| bad("element count overflows".into()))?;
    let block = dtype.block_size() as u64;
    if dims.first().is_some_and(|&row| !row.is_multiple_of(block)) {
        return Err(bad(format!("rows are not whole {dtype} blocks of {block}")));
    }
    dtype
        .size_in_bytes(numel)
        .map(|b| b as u64)
        .map_err(|e| bad(e.to_string()))
}

/// Alignment, bounds and overlap of every loadable tensor against a data section of `data_len`.
fn check_ranges(tensors: &[GgufTensorInfo], alignment: u64, data_len: u64) -> Result<()> {
    let mut spans = Vec::with_capacity(tensors.len());
    for t in tensors.iter().filter(|t| t.dtype.is_some()) {
        if !t.offset.is_multiple_of(alignment) {
            return Err(WeightError::Misaligned {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let end = t.offset.checked_add(t.byte_len).filter(|&e| e <= data_len);
        let Some(end) = end else {
            return Err(WeightError::OutOfBounds {
                tensor: t.name.clone(),
                start: t.offset,
                end: t.offset.saturating_add(t.byte_len),
                len: data_len,
            });
        };
        spans.push(Span {
            name: t.name.clone(),
            start: t.offset,
            end,
        });
    }
    check_overlaps(spans)
}
