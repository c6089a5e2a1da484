//! Dot-product kernels of weight rows (one GGUF row, or a group of 16 interleaved rows) against
//! a tile of quantized activation rows, with a table per instruction set chosen once at first
//! use: scalar (always), AVX2, AVX2 + AVX-VNNI, AVX2 + AVX512-VNNI (256-bit), AVX-512 VNNI.
//!
//! Invariants:
//! - Every kernel computes, per block, the exact integer dot product of the quants, then
//!   applies the f32 scales. GGUF-row kernels of the 32-element formats keep llama.cpp's x86
//!   `vec_dot` order: eight lanes of
//!   four consecutive elements, `lane = fma(d_w · d_x, lane_sum, lane)` per block, the lanes
//!   summed as `((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7))` at the end (then `+ Σ m·s` for Q4_1). The
//!   K formats reduce each super-block to one integer before scaling. The scalar kernels
//!   emulate the same order, so every variant agrees with the scalar one bit for bit.
//! - Interleaved-group kernels ([`GroupFn`], weights laid out by `packed.rs`) form one integer
//!   per (row, block) and accumulate `acc = fma(isum, d_w·d_x, acc)` (`+ fma(m, s)` for Q4_1)
//!   block after block, as llama.cpp's VNNI kernels for repacked weights do; again identical
//!   across variants.
//! - A tile is 1..=[`MAX_TILE`] activation rows: the weight block is decoded once per tile.
//!   Group kernels take any number of rows and tile them internally, writing straight into
//!   the output matrix.
//! - The table is chosen by run-time feature detection; `FERRUM_QUANT_KERNELS=<name>` (one of
//!   [`available`]'s names) overrides it, for debugging and comparisons.

use std::sync::OnceLock;

use ferrum_types::DType;

use super::activation::{ActFormat, ActRow};

#[cfg(target_arch = "x86_64")]
mod kquant_avx2;
mod kquant_scalar;
#[cfg(target_arch = "x86_64")]
mod legacy_avx2;
mod legacy_scalar;
mod packed_scalar;
#[cfg(target_arch = "x86_64")]
mod packed_x86;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(target_arch = "x86_64")]
mod x86_sets;

/// Most activation rows one kernel call handles.
pub const MAX_TILE: usize = 4;

/// `out[j] = Σ_blocks W_row · xs[j]` for one weight row of `nb` blocks.
///
/// # Safety
/// `w` holds at least `nb` whole blocks of the kernel's weight type; every `xs[j]` holds at least
/// `nb` blocks of the matching activation format (quants, scales and sums);
/// `1 <= xs.len() == out.len() <= MAX_TILE`; the CPU has the features of the table the kernel
/// came from.
pub type TileFn = unsafe fn(w: &[u8], nb: usize, xs: &[ActRow<'_>], out: &mut [f32]);

/// `out[j·ld + i] = W_row(i) · xs[j]` for the first `valid` rows `i` of one interleaved group
/// (`packed.rs`) and every activation row `j` (any number: kernels tile them themselves).
///
/// # Safety
/// `g` holds `nb` group-blocks of the kernel's type; every `xs[j]` holds at least `nb` blocks
/// of the matching activation format; `1 <= valid <= GROUP`; `out[j·ld .. j·ld + valid]` is
/// writable for every `j < xs.len()`; the CPU has the features of the kernel's table.
pub type GroupFn =
    unsafe fn(g: &[u8], nb: usize, xs: &[ActRow<'_>], out: *mut f32, ld: usize, valid: usize);

/// One kernel per weight type, all for one instruction set.
#[derive(Debug)]
pub struct KernelSet {
    pub name: &'static str,
    pub q4_0: TileFn,
    pub q4_1: TileFn,
    pub q8_0: TileFn,
    pub q4k: TileFn,
    pub q5k: TileFn,
    pub q6k: TileFn,
    /// Interleaved-group kernels (types with a `packed` layout).
    pub packed_q4_0: GroupFn,
    pub packed_q4_1: GroupFn,
    pub packed_q8_0: GroupFn,
}

impl KernelSet {
    /// The kernel for `dtype`, or `None` for dense types.
    pub fn get(&self, dtype: DType) -> Option<TileFn> {
        Some(match dtype {
            DType::Q4_0 => self.q4_0,
            DType::Q4_1 => self.q4_1,
            DType::Q8_0 => self.q8_0,
            DType::Q4K => self.q4k,
            DType::Q5K => self.q5k,
            DType::Q6K => self.q6k,
            DType::F32 | DType::F16 | DType::BF16 => return None,
        })
    }

    /// The interleaved-group kernel for `dtype`, where it has one.
    pub fn get_packed(&self, dtype: DType) -> Option<GroupFn> {
        match dtype {
            DType::Q4_0 => Some(self.packed_q4_0),
            DType::Q4_1 => Some(self.packed_q4_1),
            DType::Q8_0 => Some(self.packed_q8_0),
            _ => None,
        }
    }
}

/// The activation format a weight type is multiplied against (llama.cpp's `vec_dot_type`).
pub fn act_format(dtype: DType) -> Option<ActFormat> {
    match dtype {
        DType::Q4_0 | DType::Q8_0 => Some(ActFormat::Q8_0),
        DType::Q4_1 => Some(ActFormat::Q8_1),
        DType::Q4K | DType::Q5K | DType::Q6K => Some(ActFormat::Q8K),
        DType::F32 | DType::F16 | DType::BF16 => None,
    }
}

pub static SCALAR: KernelSet = KernelSet {
    name: "scalar",
    q4_0: legacy_scalar::q4_0,
    q4_1: legacy_scalar::q4_1,
    q8_0: legacy_scalar::q8_0,
    q4k: kquant_scalar::q4k,
    q5k: kquant_scalar::q5k,
    q6k: kquant_scalar::q6k,
    packed_q4_0: packed_scalar::q4_0,
    packed_q4_1: packed_scalar::q4_1,
    packed_q8_0: packed_scalar::q8_0,
};

/// Every table this CPU can run, slowest first (the scalar one always).
pub fn available() -> Vec<&'static KernelSet> {
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut sets = vec![&SCALAR];
    #[cfg(target_arch = "x86_64")]
    sets.extend(x86_sets::detect());
    sets
}

/// The fastest table for this CPU, chosen once.
pub fn best() -> &'static KernelSet {
    static BEST: OnceLock<&'static KernelSet> = OnceLock::new();
    BEST.get_or_init(|| {
        let sets = available();
        let cap = std::env::var("FERRUM_QUANT_KERNELS").ok();
        let capped = cap.and_then(|c| sets.iter().copied().find(|s| s.name == c));
        capped.unwrap_or(sets[sets.len() - 1])
    })
}

/// Sum of eight lanes in the order llama.cpp's `hsum_float_8` uses.
#[inline(always)]
pub(crate) fn hsum8_order(l: &[f32; 8]) -> f32 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}
