//! A branch-free single-precision `exp` and the activations built on it.
//!
//! Invariants:
//! - [`expf`] is a degree-5 polynomial on a range-reduced argument (maximum error below
//!   2 ulp), evaluated with fused multiply-adds in one fixed order. Every caller gets the
//!   same bits on every x86 CPU, with or without FMA hardware (without it `mul_add` is a
//!   correctly rounded library call), and the same bits as llama.cpp's AVX-512 `ggml_v_expf`.
//!   That makes the GGUF path reproduce llama.cpp's activations exactly.
//! - Arguments above about 88.7 give `+inf`, below about −103.9 give 0 (through subnormals).
//! - The loops dispatch once per call to an FMA-compiled copy of the same code where the
//!   CPU has FMA, so the polynomial vectorizes instead of calling `fmaf`.

/// Bits of the constants, written as llama.cpp's hexadecimal float literals give them.
const SHIFT: f32 = 12_582_912.0; // 0x1.8p23: adding it rounds to an integer
const LOG2E: f32 = f32::from_bits(0x3fb8_aa3b); // 0x1.715476p+0
const LN2_LO: f32 = f32::from_bits(0x35bf_be8e); // 0x1.7f7d1cp-20
const LN2_HI: f32 = f32::from_bits(0x3f31_7200); // 0x1.62e4p-1
const C5: f32 = f32::from_bits(0x3c07_2010); // 0x1.0e4020p-7
const C4: f32 = f32::from_bits(0x3d2b_9f17); // 0x1.573e2ep-5
const C3: f32 = f32::from_bits(0x3e2a_af33); // 0x1.555e66p-3
const C2: f32 = f32::from_bits(0x3eff_fedb); // 0x1.fffdb6p-2
const C1: f32 = f32::from_bits(0x3f7f_fff6); // 0x1.ffffecp-1

/// `2^k` for an integer `k` in [−126, 127], built from its exponent bits.
#[inline(always)]
fn pow2i(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// `e^x`: `x = n·ln2 + b` with integer `n`, `e^b` by a polynomial, then scaled by `2^n`.
#[inline(always)]
pub fn expf(x: f32) -> f32 {
    let z = x.mul_add(LOG2E, SHIFT);
    let n = z - SHIFT;
    let b = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let u = b * b;
    let j = C5
        .mul_add(b, C4)
        .mul_add(u, C3.mul_add(b, C2))
        .mul_add(u, C1.mul_add(b, 1.0));
    if n.abs() > 192.0 {
        return if n > 0.0 { f32::INFINITY } else { 0.0 };
    }
    // `j·2^n` in two exact-exponent steps, so that a subnormal result is rounded once.
    let k = n as i32;
    let half = k / 2;
    (j * pow2i(half)) * pow2i(k - half)
}

/// `x·σ(x)`, as `x / (1 + e^(−x))`.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + expf(0.0 - x))
}

#[inline(always)]
fn silu_mul_body(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = silu(g) * u;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn silu_mul_fma(gate: &[f32], up: &[f32], out: &mut [f32]) {
    silu_mul_body(gate, up, out)
}

/// `out[i] = silu(gate[i]) · up[i]` over the common length.
pub fn silu_mul_slice(gate: &[f32], up: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA, the only feature the copy was compiled for.
        return unsafe { silu_mul_fma(gate, up, out) };
    }
    silu_mul_body(gate, up, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_the_exact_exponential() {
        let mut worst = 0.0f64;
        let mut x = -103.0f32;
        while x < 88.0 {
            let want = f64::from(x).exp();
            let got = f64::from(expf(x));
            if want > f64::from(f32::MIN_POSITIVE) {
                worst = worst.max(((got - want) / want).abs());
            }
            x += 0.0137;
        }
        // Two ulp of f32 (1.45 ulp for the polynomial, half an ulp for the final rounding).
        assert!(
            worst < 2.0 * f64::from(f32::EPSILON),
            "worst relative error {worst:e}"
        );
    }

    #[test]
    fn edges() {
        assert_eq!(expf(0.0), 1.0);
        assert_eq!(expf(100.0), f32::INFINITY);
        assert_eq!(expf(-200.0), 0.0);
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        let tiny = expf(-100.0);
        assert!(tiny > 0.0 && tiny < f32::MIN_POSITIVE);
        assert!((silu(2.0) - 2.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
    }

    #[test]
    fn dispatch_and_fallback_agree() {
        let g: Vec<f32> = (0..999).map(|i| (i as f32 - 500.0) * 0.031).collect();
        let u: Vec<f32> = (0..999).map(|i| 1.0 + i as f32 * 1e-3).collect();
        let mut a = vec![0.0; g.len()];
        let mut b = vec![0.0; g.len()];
        silu_mul_slice(&g, &u, &mut a);
        silu_mul_body(&g, &u, &mut b);
        assert_eq!(a, b);
    }
}
