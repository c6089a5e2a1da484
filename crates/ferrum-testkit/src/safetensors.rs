//! Writes tensors as safetensors: one `model.safetensors`, or K shards plus the HF index.
//!
//! Format: u64 little-endian header length, a JSON header (`__metadata__` then tensors sorted by
//! name, each `{dtype, shape, data_offsets}`), padded with spaces to a multiple of 8 so the data
//! is aligned, then the raw little-endian data in header order.
//! Tensors stream from their generators in chunks, so an 8 GB checkpoint needs only a few MB of
//! memory. Shards split the model order (embedding first, head last) into contiguous runs of
//! about equal bytes, none empty.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::error::{io_err, Result, TestkitError};
use crate::spec::DType;
use crate::weights::TensorPlan;

const CHUNK: usize = 1 << 16;

/// Writes `model.safetensors` (shards == 1) or `model-0000i-of-0000K.safetensors` + index.
pub fn write_weights(
    dir: &Path,
    tensors: &[TensorPlan],
    dtype: DType,
    seed: u64,
    shards: usize,
) -> Result<()> {
    if shards <= 1 {
        let refs: Vec<&TensorPlan> = tensors.iter().collect();
        return write_file(&dir.join("model.safetensors"), &refs, dtype, seed);
    }
    let groups = split_into_shards(tensors, dtype, shards)?;
    let mut weight_map = BTreeMap::new();
    let mut total_size = 0usize;
    for (i, group) in groups.iter().enumerate() {
        let file_name = format!("model-{:05}-of-{:05}.safetensors", i + 1, groups.len());
        for t in group {
            weight_map.insert(t.name.clone(), file_name.clone());
            total_size += t.numel() * dtype.size_bytes();
        }
        write_file(&dir.join(&file_name), group, dtype, seed)?;
    }
    let index = Index {
        metadata: IndexMetadata { total_size },
        weight_map,
    };
    let path = dir.join("model.safetensors.index.json");
    let text = serde_json::to_string_pretty(&index)? + "\n";
    std::fs::write(&path, text).map_err(io_err(path))
}

#[derive(Serialize)]
struct Index {
    metadata: IndexMetadata,
    weight_map: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct IndexMetadata {
    total_size: usize,
}

#[derive(Serialize)]
struct HeaderEntry<'a> {
    dtype: &'static str,
    shape: &'a [usize],
    data_offsets: [usize; 2],
}

/// Contiguous runs of about `total / k` bytes each; every run holds at least one tensor.
fn split_into_shards(
    tensors: &[TensorPlan],
    dtype: DType,
    k: usize,
) -> Result<Vec<Vec<&TensorPlan>>> {
    if k > tensors.len() {
        return Err(TestkitError::InvalidSpec(format!(
            "shards ({k}) exceeds the number of tensors ({})",
            tensors.len()
        )));
    }
    let total: usize = tensors.iter().map(|t| t.numel() * dtype.size_bytes()).sum();
    let mut groups: Vec<Vec<&TensorPlan>> = vec![Vec::new(); k];
    let (mut shard, mut acc) = (0usize, 0usize);
    for (i, t) in tensors.iter().enumerate() {
        groups[shard].push(t);
        acc += t.numel() * dtype.size_bytes();
        let shards_left = k - shard - 1;
        let tensors_left = tensors.len() - i - 1;
        // Move on once this shard has its share, or when every remaining tensor is needed to
        // keep the remaining shards non-empty.
        if shards_left > 0 && (acc * k >= total * (shard + 1) || tensors_left == shards_left) {
            shard += 1;
        }
    }
    Ok(groups)
}

fn write_file(path: &Path, tensors: &[&TensorPlan], dtype: DType, seed: u64) -> Result<()> {
    let mut sorted: Vec<&TensorPlan> = tensors.to_vec();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));

    let mut header = String::from("{\"__metadata__\":{\"format\":\"pt\"}");
    let mut offset = 0usize;
    for t in &sorted {
        let len = t.numel() * dtype.size_bytes();
        let entry = HeaderEntry {
            dtype: dtype.safetensors_name(),
            shape: &t.shape,
            data_offsets: [offset, offset + len],
        };
        header.push(',');
        header.push_str(&serde_json::to_string(&t.name)?);
        header.push(':');
        header.push_str(&serde_json::to_string(&entry)?);
        offset += len;
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }

    let file = File::create(path).map_err(io_err(path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut put = |bytes: &[u8]| w.write_all(bytes).map_err(io_err(path));
    put(&(header.len() as u64).to_le_bytes())?;
    put(header.as_bytes())?;
    let mut buf = Vec::with_capacity(CHUNK * 4);
    for t in &sorted {
        let mut values = t.values(seed).peekable();
        while values.peek().is_some() {
            buf.clear();
            for v in values.by_ref().take(CHUNK) {
                encode(v, dtype, &mut buf);
            }
            put(&buf)?;
        }
    }
    w.flush().map_err(io_err(path))
}

fn encode(v: f32, dtype: DType, out: &mut Vec<u8>) {
    match dtype {
        DType::F32 => out.extend_from_slice(&v.to_le_bytes()),
        DType::BF16 => out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
        DType::F16 => out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::Init;

    fn t(name: &str, n: usize) -> TensorPlan {
        TensorPlan {
            name: name.into(),
            shape: vec![n],
            init: Init::Uniform { bound: 1.0 },
        }
    }

    #[test]
    fn shards_are_contiguous_and_non_empty() {
        let ts = vec![t("a", 1000), t("b", 1), t("c", 1), t("d", 1)];
        let g = split_into_shards(&ts, DType::F32, 3).unwrap();
        let names: Vec<Vec<&str>> = g
            .iter()
            .map(|s| s.iter().map(|t| t.name.as_str()).collect())
            .collect();
        assert_eq!(names, vec![vec!["a"], vec!["b"], vec!["c", "d"]]);
    }

    #[test]
    fn too_many_shards_is_an_error() {
        assert!(split_into_shards(&[t("a", 1)], DType::F32, 2).is_err());
    }

    #[test]
    fn header_is_aligned_and_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        write_file(&path, &[&t("w", 3)], DType::BF16, 1).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        assert_eq!(header["w"]["dtype"], "BF16");
        assert_eq!(header["w"]["data_offsets"][1], 6);
        assert_eq!(bytes.len(), 8 + n + 6);
    }
}
