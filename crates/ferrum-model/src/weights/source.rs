//! The one interface the model code uses to read a checkpoint, whatever its format.
//!
//! Invariants:
//! - Names are Hugging Face names (`model.layers.0.self_attn.q_proj.weight`) for every format;
//!   GGUF names are mapped on open.
//! - Shapes are outermost-first (PyTorch order) and `tensor(name).data.len()` is exactly the
//!   byte size that `info(name)` implies.
//! - Every byte range was validated against the file when it was opened, so `tensor` does not
//!   fail for a listed name except for a documented reason (e.g. an unsupported dtype).

use ferrum_backend::HostTensor;
use ferrum_types::DType;

use super::error::{Result, WeightError};
use super::gguf::GgufMetadata;

/// Dtype and outermost-first shape of a stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes this tensor occupies (whole blocks for quantized types).
    pub fn byte_len(&self) -> Result<usize> {
        self.dtype
            .size_in_bytes(self.numel())
            .map_err(|e| WeightError::header("tensor", e.to_string()))
    }
}

/// A read-only checkpoint: a name → tensor map whose tensors borrow from the source.
pub trait WeightSource: Send + Sync {
    /// Every loadable tensor name, sorted. Tensors of dtypes we cannot use are left out here
    /// and fail in [`WeightSource::tensor`] with [`WeightError::UnknownDType`].
    fn names(&self) -> Vec<String>;

    fn info(&self, name: &str) -> Option<TensorInfo>;

    /// The tensor's bytes, borrowed from the memory map where the layout allows.
    fn tensor(&self, name: &str) -> Result<HostTensor<'_>>;

    /// Sum of the byte sizes of all loadable tensors (for memory planning).
    fn total_bytes(&self) -> u64;

    /// Short format name for logs: `safetensors`, `gguf`, `pytorch`.
    fn format(&self) -> &'static str;

    fn contains(&self, name: &str) -> bool {
        self.info(name).is_some()
    }

    /// GGUF key/value metadata (model hyper-parameters, tokenizer), when the source is GGUF.
    fn gguf_metadata(&self) -> Option<&GgufMetadata> {
        None
    }
}
