//! GGUF files: the parsed header, the metadata, and tensor bytes sliced from a memory map.
//!
//! [`GgufFile`] is the file as written (GGUF names, innermost-first dims); [`GgufWeights`] is
//! the [`WeightSource`](super::WeightSource) view the model code uses (Hugging Face names and
//! layout, outermost-first shapes).

mod names;
mod reader;
mod rope_layout;
mod source;
mod types;
mod value;

use std::path::Path;

pub use names::{gguf_to_hf, hf_to_gguf};
pub use reader::{parse, GgufHeader, GgufTensorInfo, DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH};
pub use source::{GgufLayout, GgufWeights};
pub use types::{ggml_dtype, ggml_type_name};
pub use value::{GgufArray, GgufMetadata, GgufValue};

use super::bytes::FileBytes;
use super::error::{Result, WeightError};

/// A validated GGUF file.
pub struct GgufFile {
    label: String,
    bytes: FileBytes,
    header: GgufHeader,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let label = path.display().to_string();
        Self::from_bytes(FileBytes::map(path)?, label)
    }

    /// Parses and validates `bytes`; `label` names the file in messages.
    pub fn from_bytes(bytes: FileBytes, label: String) -> Result<Self> {
        let header = parse(&bytes)?;
        Ok(GgufFile {
            label,
            bytes,
            header,
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn version(&self) -> u32 {
        self.header.version
    }

    pub fn metadata(&self) -> &GgufMetadata {
        &self.header.metadata
    }

    /// Tensor infos in file order, with their GGUF names.
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.header.tensors
    }

    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    pub fn data_start(&self) -> u64 {
        self.header.data_start
    }

    /// The stored bytes of `t` (one of [`GgufFile::tensors`]).
    pub fn tensor_data(&self, t: &GgufTensorInfo) -> Result<&[u8]> {
        if t.dtype.is_none() {
            return Err(WeightError::UnknownDType {
                tensor: t.name.clone(),
                dtype: ggml_type_name(t.ggml_type),
            });
        }
        // In range by construction (checked in `parse`); `slice_at` keeps this panic-free even
        // for a `GgufTensorInfo` that did not come from this file.
        let start = self.header.data_start.saturating_add(t.offset);
        super::bytes::slice_at(&self.bytes, start, t.byte_len).ok_or_else(|| {
            WeightError::OutOfBounds {
                tensor: t.name.clone(),
                start: t.offset,
                end: t.offset.saturating_add(t.byte_len),
                len: (self.bytes.len() as u64).saturating_sub(self.header.data_start),
            }
        })
    }
}
