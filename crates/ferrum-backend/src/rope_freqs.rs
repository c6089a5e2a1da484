//! The rotary angle of every (position, frequency) pair, as each checkpoint format's reference
//! implementation forms it.
//!
//! Invariants:
//! - Angles are formed in f32 exactly as the reference does (one product for transformers,
//!   llama.cpp's running product for GGUF files), because a one-ulp difference in an angle
//!   changes the rotated q/k, and with 8-bit activations downstream that grows into a
//!   different token. Every backend builds its cos/sin tables here, so all agree.
//! - The tables hold `max_positions × half` entries, position-major.

/// How the angle of position `p` and frequency `i` is formed.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeFrequencies {
    /// `p · inv_freq[i]`, one f32 product, evaluated in f64 (transformers'
    /// `inv_freq @ position_ids`, with scaling already folded into `inv_freq`).
    Product { inv_freq: Vec<f32> },
    /// llama.cpp's `ggml_rope_cache_init`: `θ = p`, then per pair
    /// `angle = freq_scale · (θ / freq_factors[i])` and `θ ← θ · theta_scale`, all in f32, with
    /// f32 `cos`/`sin`.
    RunningProduct {
        half: usize,
        /// `base^(−2 / rotary_dim)`, as f32 `powf`.
        theta_scale: f32,
        /// `1 / linear scaling factor` (1 without scaling).
        freq_scale: f32,
        /// Per-frequency divisors (`rope_freqs.weight`), empty for none.
        freq_factors: Vec<f32>,
    },
}

impl RopeFrequencies {
    /// Rotated pairs per head (`rotary_dim / 2`).
    pub fn half(&self) -> usize {
        match self {
            Self::Product { inv_freq } => inv_freq.len(),
            Self::RunningProduct { half, .. } => *half,
        }
    }

    /// `(cos, sin)` for positions `0..max_positions`.
    pub fn tables(&self, max_positions: usize) -> (Vec<f32>, Vec<f32>) {
        let half = self.half();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            match self {
                Self::Product { inv_freq } => {
                    for &f in inv_freq {
                        let a = f64::from(p as f32 * f);
                        cos.push(a.cos() as f32);
                        sin.push(a.sin() as f32);
                    }
                }
                Self::RunningProduct {
                    theta_scale,
                    freq_scale,
                    freq_factors,
                    ..
                } => {
                    let mut theta = p as f32;
                    for i in 0..half {
                        let ff = freq_factors.get(i).copied().unwrap_or(1.0);
                        let a = freq_scale * (theta / ff);
                        cos.push(a.cos());
                        sin.push(a.sin());
                        theta *= theta_scale;
                    }
                }
            }
        }
        (cos, sin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formations_give_nearly_the_same_angles() {
        let (d, base) = (64usize, 10_000.0f64);
        let inv_freq: Vec<f32> = (0..d / 2)
            .map(|i| (1.0 / base.powf(2.0 * i as f64 / d as f64)) as f32)
            .collect();
        let a = RopeFrequencies::Product { inv_freq };
        let b = RopeFrequencies::RunningProduct {
            half: d / 2,
            theta_scale: (base as f32).powf(-2.0 / d as f32),
            freq_scale: 1.0,
            freq_factors: Vec::new(),
        };
        let (ca, sa) = a.tables(300);
        let (cb, sb) = b.tables(300);
        assert_eq!(ca.len(), 300 * 32);
        let worst = ca
            .iter()
            .zip(&cb)
            .chain(sa.iter().zip(&sb))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{worst}");
        // Position 0 is the identity in both; position 1 of frequency 0 is exactly 1 radian.
        assert_eq!((ca[0], sa[0], cb[0], sb[0]), (1.0, 0.0, 1.0, 0.0));
        assert_eq!(cb[32], 1.0f32.cos());
    }

    #[test]
    fn scaling_and_factors_divide_the_angle() {
        let f = RopeFrequencies::RunningProduct {
            half: 2,
            theta_scale: 0.5,
            freq_scale: 0.25,
            freq_factors: vec![1.0, 2.0],
        };
        let (c, _) = f.tables(5);
        // position 4: angles 0.25·4 = 1 and 0.25·(2/2) = 0.25
        assert_eq!(c[8], 1.0f32.cos());
        assert_eq!(c[9], 0.25f32.cos());
    }
}
