//! Rotary position embeddings from a precomputed cos/sin table.
//!
//! Invariant: a pair `(x0, x1)` becomes `(fma(x0, cos, −x1·sin), fma(x0, sin, x1·cos))`, the
//! contraction llama.cpp's compiled rotation has, so GGUF models reproduce its q/k exactly.

use crate::{BackendError, Result, RopeFrequencies, RopeStyle};

/// `cos`/`sin` of `position × inv_freq[i]` for every position below `max_positions`.
#[derive(Debug)]
pub struct CpuRope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
    max_positions: usize,
    style: RopeStyle,
}

impl CpuRope {
    pub fn new(freqs: &RopeFrequencies, max_positions: usize, style: RopeStyle) -> Self {
        let half = freqs.half();
        let (cos, sin) = freqs.tables(max_positions);
        Self {
            cos,
            sin,
            half,
            max_positions,
            style,
        }
    }

    /// Rotates the first `2 × half` dimensions of every head of every row.
    pub fn apply(
        &self,
        x: &mut [f32],
        cols: usize,
        head_dim: usize,
        positions: &[u32],
    ) -> Result<()> {
        if head_dim == 0 || !cols.is_multiple_of(head_dim) || 2 * self.half > head_dim {
            return Err(BackendError::Shape {
                what: "rotary".into(),
                expected: format!("head_dim ≥ {} dividing {cols}", 2 * self.half),
                got: format!("head_dim {head_dim}"),
            });
        }
        for (row, &pos) in x.chunks_mut(cols).zip(positions) {
            let p = pos as usize;
            if p >= self.max_positions {
                return Err(BackendError::Batch(format!(
                    "position {p} beyond the rotary table of {}",
                    self.max_positions
                )));
            }
            let cos = &self.cos[p * self.half..(p + 1) * self.half];
            let sin = &self.sin[p * self.half..(p + 1) * self.half];
            rotate_row(row, head_dim, cos, sin, self.style);
        }
        Ok(())
    }
}

#[inline(always)]
fn rotate_row_body(row: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32], style: RopeStyle) {
    let half = cos.len();
    for head in row.chunks_mut(head_dim) {
        match style {
            RopeStyle::Neox => {
                let (a, b) = head[..2 * half].split_at_mut(half);
                for i in 0..half {
                    let (x0, x1) = (a[i], b[i]);
                    a[i] = x0.mul_add(cos[i], -(x1 * sin[i]));
                    b[i] = x0.mul_add(sin[i], x1 * cos[i]);
                }
            }
            RopeStyle::Interleaved => {
                for i in 0..half {
                    let (x0, x1) = (head[2 * i], head[2 * i + 1]);
                    head[2 * i] = x0.mul_add(cos[i], -(x1 * sin[i]));
                    head[2 * i + 1] = x0.mul_add(sin[i], x1 * cos[i]);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn rotate_row_fma(
    row: &mut [f32],
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
    style: RopeStyle,
) {
    rotate_row_body(row, head_dim, cos, sin, style)
}

/// Rotates every head of one row (FMA instructions where the CPU has them, else the same
/// fused operations from the C library).
fn rotate_row(row: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32], style: RopeStyle) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA, the only feature the copy was compiled for.
        return unsafe { rotate_row_fma(row, head_dim, cos, sin, style) };
    }
    rotate_row_body(row, head_dim, cos, sin, style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_rotate_the_same_pairs_in_different_storage_orders() {
        let inv = RopeFrequencies::Product {
            inv_freq: vec![1.0, 0.1],
        };
        let neox = CpuRope::new(&inv, 8, RopeStyle::Neox);
        let inter = CpuRope::new(&inv, 8, RopeStyle::Interleaved);
        let mut a = vec![1.0, 2.0, 3.0, 4.0]; // pairs (1,3) and (2,4)
        let mut b = vec![1.0, 3.0, 2.0, 4.0]; // the same pairs, adjacent
        neox.apply(&mut a, 4, 4, &[5]).unwrap();
        inter.apply(&mut b, 4, 4, &[5]).unwrap();
        assert!((a[0] - b[0]).abs() < 1e-6 && (a[2] - b[1]).abs() < 1e-6);
        assert!((a[1] - b[2]).abs() < 1e-6 && (a[3] - b[3]).abs() < 1e-6);
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>();
        assert!((norm(&a) - 30.0).abs() < 1e-4);
    }
}
