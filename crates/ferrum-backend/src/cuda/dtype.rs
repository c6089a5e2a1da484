//! The element type a CUDA backend computes in: weights, activations and the KV cache are
//! stored in it, and every kernel accumulates in f32 (`--dtype`).

use std::fmt;

/// Storage type of a CUDA backend's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CudaDType {
    #[default]
    BF16,
    F16,
    F32,
}

impl CudaDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            CudaDType::BF16 | CudaDType::F16 => 2,
            CudaDType::F32 => 4,
        }
    }

    /// `FERRUM_ELEM` of the kernel sources (see `kernels/common.cuh`).
    pub(crate) fn kernel_define(self) -> u32 {
        match self {
            CudaDType::BF16 => 0,
            CudaDType::F16 => 1,
            CudaDType::F32 => 2,
        }
    }

    /// The type `--dtype` names, given the checkpoint's declared dtype (`torch_dtype`). `auto`
    /// keeps a 16-bit checkpoint's type and runs an f32 checkpoint in bf16 (half the memory
    /// and bandwidth); `None` for a name that is not a dtype.
    pub fn from_flag(flag: &str, checkpoint: &str) -> Option<Self> {
        match flag {
            "auto" => Some(match checkpoint {
                "float16" | "half" => CudaDType::F16,
                _ => CudaDType::BF16,
            }),
            "bfloat16" => Some(CudaDType::BF16),
            "float16" | "half" => Some(CudaDType::F16),
            "float32" | "float" => Some(CudaDType::F32),
            _ => None,
        }
    }
}

/// Device buffers hold `u16` words: one per 16-bit element, two per f32 (low half first, as
/// the little-endian device reads them).
impl CudaDType {
    /// `u16` words per element.
    pub(crate) fn words(self) -> usize {
        self.size() / 2
    }

    /// Host values as device words, rounded to nearest even for the 16-bit types.
    pub(crate) fn f32_to_words(self, src: &[f32], dst: &mut [u16]) {
        match self {
            CudaDType::BF16 => {
                for (o, &v) in dst.iter_mut().zip(src) {
                    *o = half::bf16::from_f32(v).to_bits();
                }
            }
            CudaDType::F16 => {
                for (o, &v) in dst.iter_mut().zip(src) {
                    *o = half::f16::from_f32(v).to_bits();
                }
            }
            CudaDType::F32 => {
                for (o, &v) in dst.chunks_exact_mut(2).zip(src) {
                    let b = v.to_bits();
                    o[0] = b as u16;
                    o[1] = (b >> 16) as u16;
                }
            }
        }
    }

    /// Device words back to f32 values.
    pub(crate) fn words_to_f32(self, src: &[u16], dst: &mut [f32]) {
        match self {
            CudaDType::BF16 => {
                for (o, &b) in dst.iter_mut().zip(src) {
                    *o = half::bf16::from_bits(b).to_f32();
                }
            }
            CudaDType::F16 => {
                for (o, &b) in dst.iter_mut().zip(src) {
                    *o = half::f16::from_bits(b).to_f32();
                }
            }
            CudaDType::F32 => {
                for (o, w) in dst.iter_mut().zip(src.chunks_exact(2)) {
                    *o = f32::from_bits(u32::from(w[0]) | (u32::from(w[1]) << 16));
                }
            }
        }
    }
}

impl fmt::Display for CudaDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CudaDType::BF16 => "bfloat16",
            CudaDType::F16 => "float16",
            CudaDType::F32 => "float32",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_vllm_names() {
        assert_eq!(
            CudaDType::from_flag("auto", "bfloat16"),
            Some(CudaDType::BF16)
        );
        assert_eq!(
            CudaDType::from_flag("auto", "float16"),
            Some(CudaDType::F16)
        );
        assert_eq!(
            CudaDType::from_flag("auto", "float32"),
            Some(CudaDType::BF16)
        );
        assert_eq!(
            CudaDType::from_flag("half", "float32"),
            Some(CudaDType::F16)
        );
        assert_eq!(
            CudaDType::from_flag("float", "bfloat16"),
            Some(CudaDType::F32)
        );
        assert_eq!(
            CudaDType::from_flag("float32", "bfloat16").map(|d| d.size()),
            Some(4)
        );
        assert_eq!(CudaDType::from_flag("fp8", "bfloat16"), None);
    }

    #[test]
    fn words_round_trip() {
        let vals = [1.0f32, -2.5, 3.0e-3, 1.0e-7, 0.0];
        for d in [CudaDType::BF16, CudaDType::F16, CudaDType::F32] {
            let mut words = vec![0u16; vals.len() * d.words()];
            d.f32_to_words(&vals, &mut words);
            let mut back = vec![0.0f32; vals.len()];
            d.words_to_f32(&words, &mut back);
            for (&v, &b) in vals.iter().zip(&back) {
                let want = match d {
                    CudaDType::BF16 => half::bf16::from_f32(v).to_f32(),
                    CudaDType::F16 => half::f16::from_f32(v).to_f32(),
                    CudaDType::F32 => v,
                };
                assert_eq!(b.to_bits(), want.to_bits(), "{d} {v}");
            }
        }
    }
}
