//! Helpers shared by the CUDA integration tests (and the CPU attention test): the device, or a
//! note that there is none, and a deterministic generator of test values.
#![allow(dead_code)]

use ferrum_backend::cuda::{CudaBackend, CudaDType};

/// Device 0 in bf16, or `None` with a note where CUDA is not usable (the test then passes as
/// skipped).
pub fn cuda() -> Option<CudaBackend> {
    cuda_as(CudaDType::BF16)
}

/// Device 0 computing in `dtype`, or `None` as [`cuda`].
pub fn cuda_as(dtype: CudaDType) -> Option<CudaBackend> {
    match CudaBackend::with_dtype(0, dtype) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// A 64-bit linear congruential generator: the same values on every machine.
pub struct Lcg(pub u64);

impl Lcg {
    /// Uniform in [-1, 1).
    pub fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Uniform in [-1, 1), rounded to bf16 (exactly what the device will hold).
    pub fn next_bf16(&mut self) -> f32 {
        half::bf16::from_f32(self.next()).to_f32()
    }

    /// `n` values of [`Lcg::next_bf16`].
    pub fn vec_bf16(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_bf16()).collect()
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next() + 1.0) * 0.5 * n as f32) as usize % n
    }
}
