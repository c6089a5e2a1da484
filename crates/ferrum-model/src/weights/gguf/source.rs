//! [`GgufWeights`]: a GGUF file seen through Hugging Face names and layout.
//!
//! Invariants:
//! - Every mapped name is unique (a file whose GGUF and mapped names collide is refused).
//! - With [`GgufLayout::HuggingFace`], tensors come back in the layout the same model's
//!   safetensors would have: for `general.architecture = llama`, Q/K projection rows are
//!   un-permuted (see `rope_layout.rs`), which costs one copy of those tensors. With
//!   [`GgufLayout::Stored`] (what [`GgufWeights::open`] gives, and what the model runs on),
//!   bytes come back as stored and the model rotates adjacent pairs instead, as llama.cpp does.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use ferrum_backend::HostTensor;

use super::rope_layout::unpermute_rows;
use super::{ggml_type_name, gguf_to_hf, GgufFile, GgufMetadata};
use crate::weights::error::{Result, WeightError};
use crate::weights::source::{TensorInfo, WeightSource};

/// How tensor bytes are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GgufLayout {
    /// The Hugging Face layout (llama Q/K rows un-permuted), comparable tensor for tensor
    /// with the same model's safetensors.
    HuggingFace,
    /// The bytes as stored (llama Q/K rows in llama.cpp's interleaved-rotary order): no copy,
    /// and the same per-head element order as llama.cpp, so the same sums.
    #[default]
    Stored,
}

/// Heads of the row permutation that a llama GGUF's Q and K projections carry.
#[derive(Debug, Clone, Copy)]
struct RopeHeads {
    q: usize,
    kv: usize,
}

pub struct GgufWeights {
    file: GgufFile,
    /// Hugging Face name (or the GGUF name when it has no mapping) → index in `file.tensors()`.
    by_name: BTreeMap<String, usize>,
    rope_heads: Option<RopeHeads>,
}

impl GgufWeights {
    /// Opens `path` with the stored layout (llama models then use interleaved rotary).
    pub fn open(path: &Path) -> Result<Self> {
        Self::new(GgufFile::open(path)?, GgufLayout::Stored)
    }

    pub fn new(file: GgufFile, layout: GgufLayout) -> Result<Self> {
        let mut by_name = BTreeMap::new();
        for (i, t) in file.tensors().iter().enumerate() {
            let name = gguf_to_hf(&t.name).unwrap_or_else(|| t.name.clone());
            if by_name.insert(name.clone(), i).is_some() {
                return Err(WeightError::header(
                    "gguf",
                    format!("two tensors map to the name {name}"),
                ));
            }
        }
        let rope_heads = match layout {
            GgufLayout::HuggingFace => rope_heads(file.metadata())?,
            GgufLayout::Stored => None,
        };
        Ok(GgufWeights {
            file,
            by_name,
            rope_heads,
        })
    }

    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    pub fn metadata(&self) -> &GgufMetadata {
        self.file.metadata()
    }

    /// Heads whose rows to un-permute for `name`, when `name` is a llama Q or K projection.
    fn permuted_heads(&self, name: &str) -> Option<usize> {
        let heads = self.rope_heads?;
        let proj = name
            .strip_suffix(".weight")
            .or_else(|| name.strip_suffix(".bias"))?;
        if proj.ends_with(".self_attn.q_proj") {
            Some(heads.q)
        } else if proj.ends_with(".self_attn.k_proj") {
            Some(heads.kv)
        } else {
            None
        }
    }
}

fn rope_heads(md: &GgufMetadata) -> Result<Option<RopeHeads>> {
    if md.opt_str("general.architecture")? != Some("llama") {
        return Ok(None);
    }
    let q = md.get_usize("llama.attention.head_count")?;
    let kv = md.opt_usize("llama.attention.head_count_kv")?.unwrap_or(q);
    Ok(Some(RopeHeads { q, kv }))
}

impl WeightSource for GgufWeights {
    fn names(&self) -> Vec<String> {
        let tensors = self.file.tensors();
        self.by_name
            .iter()
            .filter(|(_, &i)| tensors[i].dtype.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn info(&self, name: &str) -> Option<TensorInfo> {
        let t = &self.file.tensors()[*self.by_name.get(name)?];
        Some(TensorInfo {
            dtype: t.dtype?,
            shape: t.shape(),
        })
    }

    fn tensor(&self, name: &str) -> Result<HostTensor<'_>> {
        let Some(&i) = self.by_name.get(name) else {
            return Err(WeightError::MissingTensor {
                name: name.to_string(),
                in_file: Some(self.file.label().to_string()),
            });
        };
        let t = &self.file.tensors()[i];
        let Some(dtype) = t.dtype else {
            return Err(WeightError::UnknownDType {
                tensor: name.to_string(),
                dtype: ggml_type_name(t.ggml_type),
            });
        };
        let data = self.file.tensor_data(t)?;
        let shape = t.shape();
        let data = match self.permuted_heads(name) {
            None => Cow::Borrowed(data),
            Some(heads) => {
                let rows = shape.first().copied().unwrap_or(0);
                let dense_1d = shape.len() == 1 && !dtype.is_quantized();
                if shape.len() != 2 && !dense_1d {
                    return Err(permute_shape(name, &shape, heads));
                }
                let hf = unpermute_rows(data, rows, heads)
                    .ok_or_else(|| permute_shape(name, &shape, heads))?;
                Cow::Owned(hf)
            }
        };
        Ok(HostTensor { dtype, shape, data })
    }

    fn total_bytes(&self) -> u64 {
        self.file.tensors().iter().map(|t| t.byte_len).sum()
    }

    fn format(&self) -> &'static str {
        "gguf"
    }

    fn gguf_metadata(&self) -> Option<&GgufMetadata> {
        Some(self.file.metadata())
    }
}

fn permute_shape(name: &str, shape: &[usize], heads: usize) -> WeightError {
    WeightError::BadShape {
        tensor: name.to_string(),
        shape: shape.iter().map(|&d| d as u64).collect(),
        reason: format!("rows do not split into {heads} heads of even size"),
    }
}
