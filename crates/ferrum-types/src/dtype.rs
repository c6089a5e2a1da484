//! Element types of stored tensors, dense and block-quantized.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum DTypeError {
    #[error("tensor of {numel} elements is not a whole number of {dtype} blocks of {block}")]
    PartialBlock {
        dtype: DType,
        numel: usize,
        block: usize,
    },
    #[error("tensor size overflows: {0} elements")]
    Overflow(usize),
}

/// Element type of a tensor as stored in a checkpoint (safetensors, GGUF, PyTorch pickle).
///
/// Quantized types store `block_size()` elements in `block_bytes()` bytes along the last (input)
/// dimension; a row is always a whole number of blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl DType {
    /// Elements per block (1 for dense types).
    pub fn block_size(self) -> usize {
        match self {
            DType::F32 | DType::F16 | DType::BF16 => 1,
            DType::Q4_0 | DType::Q4_1 | DType::Q8_0 => 32,
            DType::Q4K | DType::Q5K | DType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
            DType::Q8_0 => 34,
            DType::Q4K => 144,
            DType::Q5K => 176,
            DType::Q6K => 210,
        }
    }

    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes needed for `numel` elements, or an error when `numel` is not a whole number of blocks.
    pub fn size_in_bytes(self, numel: usize) -> Result<usize, DTypeError> {
        let block = self.block_size();
        if !numel.is_multiple_of(block) {
            return Err(DTypeError::PartialBlock {
                dtype: self,
                numel,
                block,
            });
        }
        (numel / block)
            .checked_mul(self.block_bytes())
            .ok_or(DTypeError::Overflow(numel))
    }

    /// Name as used by safetensors / GGUF documentation.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::Q8_0 => "Q8_0",
            DType::Q4K => "Q4_K",
            DType::Q5K => "Q5_K",
            DType::Q6K => "Q6_K",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(DType::Q4_1.size_in_bytes(64).ok(), Some(40));
        assert_eq!(DType::Q6K.size_in_bytes(512).ok(), Some(420));
        assert_eq!(DType::BF16.size_in_bytes(3).ok(), Some(6));
        assert!(DType::Q8_0.size_in_bytes(33).is_err());
    }
}
