//! A tiny, fully specified PRNG, so weights never depend on an external crate's version.
//!
//! splitmix64 (Steele, Lea and Flood, 2014): a 64-bit counter passed through a bijective mixer.
//! Floats are built from the top 24 bits, so every step is exact or one IEEE rounding.

/// splitmix64 state.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1) with 24 bits of resolution: `2u - 1` is exact for a 24-bit `u`.
    pub fn next_symmetric(&mut self) -> f32 {
        let u = (self.next_u64() >> 40) as f32 * (1.0 / 16_777_216.0);
        2.0 * u - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_first_outputs() {
        // Pinned so that a change to the mixer, which would invalidate every fixture, is caught
        // here with a clear name rather than as a hash mismatch elsewhere.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn symmetric_stays_in_range() {
        let mut r = SplitMix64::new(7);
        for _ in 0..10_000 {
            let x = r.next_symmetric();
            assert!((-1.0..1.0).contains(&x));
        }
    }
}
