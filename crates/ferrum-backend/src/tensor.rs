use std::borrow::Cow;

use ferrum_types::DType;

use crate::{BackendError, Result};

/// A tensor as read from a checkpoint, in host memory (often a slice of a memory map).
///
/// `shape` is outermost-first as in PyTorch: a linear layer's weight is `[out_features,
/// in_features]`, and block-quantized rows run along the last dimension.
#[derive(Debug, Clone)]
pub struct HostTensor<'a> {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Cow<'a, [u8]>,
}

impl<'a> HostTensor<'a> {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Checks that `data` holds exactly the bytes that `dtype` and `shape` call for.
    pub fn validate(&self) -> Result<()> {
        let expected = self.dtype.size_in_bytes(self.numel())?;
        if expected != self.data.len() {
            return Err(BackendError::Shape {
                what: "data length".into(),
                expected: format!("{expected} bytes for {:?} {}", self.shape, self.dtype),
                got: format!("{} bytes", self.data.len()),
            });
        }
        Ok(())
    }

    /// Rows and columns when viewed as a matrix (last dimension is columns).
    pub fn matrix_dims(&self) -> (usize, usize) {
        match self.shape.as_slice() {
            [] => (1, 1),
            [n] => (1, *n),
            [.., c] => (self.numel() / (*c).max(1), *c),
        }
    }

    /// Decodes a dense tensor to f32 (quantized types are handled by the backend).
    pub fn to_f32_dense(&self) -> Result<Vec<f32>> {
        self.validate()?;
        let d = &self.data;
        Ok(match self.dtype {
            DType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(BackendError::UnsupportedDType {
                    op: "to_f32_dense",
                    dtype: other,
                })
            }
        })
    }
}
