//! Rotary position embeddings from a precomputed cos/sin table.

use crate::{BackendError, Result, RopeStyle};

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
    pub fn new(inv_freq: &[f32], max_positions: usize, style: RopeStyle) -> Self {
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for &f in inv_freq {
                // The angle is formed in f32 as the checkpoints' reference code does, then
                // evaluated in f64 so that large positions keep their precision.
                let a = f64::from(p as f32 * f);
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
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
            for head in row.chunks_mut(head_dim) {
                match self.style {
                    RopeStyle::Neox => {
                        let (a, b) = head[..2 * self.half].split_at_mut(self.half);
                        for i in 0..self.half {
                            let (x0, x1) = (a[i], b[i]);
                            a[i] = x0 * cos[i] - x1 * sin[i];
                            b[i] = x0 * sin[i] + x1 * cos[i];
                        }
                    }
                    RopeStyle::Interleaved => {
                        for i in 0..self.half {
                            let (x0, x1) = (head[2 * i], head[2 * i + 1]);
                            head[2 * i] = x0 * cos[i] - x1 * sin[i];
                            head[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_rotate_the_same_pairs_in_different_storage_orders() {
        let inv = [1.0f32, 0.1];
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
