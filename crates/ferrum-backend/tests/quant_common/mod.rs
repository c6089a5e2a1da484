//! Helpers shared by the `quant_*` integration tests: a deterministic RNG, random valid blocks,
//! and the fixtures written by `scripts/fixtures/quant_make_fixtures.py`.
#![allow(dead_code)]

use std::path::PathBuf;

use ferrum_types::DType;

/// splitmix64: deterministic and dependency-free.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Random but valid blocks: random quant bytes, finite f16 scales of plausible size.
pub fn random_blocks(dtype: DType, blocks: usize, rng: &mut Rng) -> Vec<u8> {
    let bb = dtype.block_bytes();
    let mut data: Vec<u8> = (0..blocks * bb).map(|_| rng.next_u64() as u8).collect();
    let scale_offsets: &[usize] = match dtype {
        DType::Q4_0 | DType::Q8_0 => &[0],
        DType::Q4_1 | DType::Q4K | DType::Q5K => &[0, 2],
        DType::Q6K => &[208],
        DType::F32 | DType::F16 | DType::BF16 => &[],
    };
    for blk in data.chunks_exact_mut(bb) {
        for &at in scale_offsets {
            let v = rng.f32() * 0.05;
            blk[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
    }
    data
}

/// Activations with a different magnitude per 32 values, like real hidden states.
pub fn random_acts(n: usize, rng: &mut Rng) -> Vec<f32> {
    let mut scale = 1.0;
    (0..n)
        .map(|i| {
            if i % 32 == 0 {
                scale = 0.1 + 4.0 * rng.f32().abs();
            }
            rng.f32() * scale
        })
        .collect()
}

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quant")
}

/// Reads a fixture file of little-endian f32 values.
pub fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture_dir().join(name)).expect("fixture present");
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub fn read_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).expect("fixture present")
}
