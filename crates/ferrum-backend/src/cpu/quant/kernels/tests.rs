//! Every kernel table against the scalar one (bit for bit), and the scalar one against f64 dot
//! products of the decoded operands (which `tests/quant_dequant.rs` ties to gguf-py).

use ferrum_types::DType;

use super::{act_format, available, SCALAR};
use crate::cpu::pool::Serial;
use crate::cpu::quant::activation::{ActBuffer, ActFormat, ActRow};
use crate::cpu::quant::dequant::dequantize_row;

/// splitmix64: deterministic and dependency-free.
pub(crate) struct Rng(pub u64);

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

pub(crate) const QUANT_TYPES: [DType; 6] = [
    DType::Q4_0,
    DType::Q4_1,
    DType::Q8_0,
    DType::Q4K,
    DType::Q5K,
    DType::Q6K,
];

/// Random but valid blocks: random quant bytes, finite f16 scales of plausible size.
pub(crate) fn random_blocks(dtype: DType, blocks: usize, rng: &mut Rng) -> Vec<u8> {
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
pub(crate) fn random_acts(n: usize, rng: &mut Rng) -> Vec<f32> {
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

fn decoded_acts(format: ActFormat, row: &ActRow<'_>) -> Vec<f64> {
    let bs = format.block_size();
    row.qs
        .iter()
        .enumerate()
        .map(|(i, &q)| q as f64 * row.d[i / bs] as f64)
        .collect()
}

#[test]
fn every_table_equals_scalar_exactly() {
    let mut rng = Rng(7);
    let sets = available();
    assert!(!sets.is_empty());
    for dtype in QUANT_TYPES {
        let format = act_format(dtype).unwrap();
        let nb = if dtype.block_size() == 256 { 3 } else { 24 };
        let cols = nb * dtype.block_size();
        let w = random_blocks(dtype, nb, &mut rng);
        let x = random_acts(4 * cols, &mut rng);
        let mut acts = ActBuffer::default();
        acts.quantize(&Serial, format, &x, 4, cols);
        let rows: Vec<ActRow<'_>> = (0..4).map(|r| acts.row(r)).collect();
        for n in 1..=4 {
            let mut want = vec![0.0f32; n];
            let scalar = SCALAR.get(dtype).unwrap();
            // SAFETY: sizes as built above; the scalar kernels need no CPU feature.
            unsafe { scalar(&w, nb, &rows[..n], &mut want) };
            for set in &sets {
                let mut got = vec![0.0f32; n];
                // SAFETY: `available()` lists only tables this CPU supports.
                unsafe { set.get(dtype).unwrap()(&w, nb, &rows[..n], &mut got) };
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{} {dtype} tile {n}: {got:?} vs {want:?}",
                    set.name
                );
            }
        }
    }
}

#[test]
fn scalar_equals_decoded_dot_products() {
    let mut rng = Rng(11);
    for dtype in QUANT_TYPES {
        let format = act_format(dtype).unwrap();
        let nb = if dtype.block_size() == 256 { 4 } else { 32 };
        let cols = nb * dtype.block_size();
        for trial in 0..8 {
            let w = random_blocks(dtype, nb, &mut rng);
            let mut wf = vec![0.0f32; cols];
            dequantize_row(dtype, &w, &mut wf).unwrap();
            let x = random_acts(cols, &mut rng);
            let mut acts = ActBuffer::default();
            acts.quantize(&Serial, format, &x, 1, cols);
            let row = acts.row(0);
            let xf = decoded_acts(format, &row);
            let exact: f64 = wf.iter().zip(&xf).map(|(&a, &b)| a as f64 * b).sum();
            let magnitude: f64 = wf
                .iter()
                .zip(&xf)
                .map(|(&a, &b)| (a as f64 * b).abs())
                .sum();
            // Q4_1 uses the f16-rounded `s = d·Σq` for its min term: relative error 2⁻¹¹.
            let s_err: f64 = if dtype == DType::Q4_1 {
                (0..nb)
                    .map(|b| {
                        (super::super::layout::f16_at(&w[b * 20..], 2) * row.s[b]).abs() as f64
                    })
                    .sum::<f64>()
                    * 1e-3
            } else {
                0.0
            };
            let mut got = [0.0f32];
            // SAFETY: sizes as built above; no CPU feature needed.
            unsafe { SCALAR.get(dtype).unwrap()(&w, nb, &[row], &mut got) };
            let err = (got[0] as f64 - exact).abs();
            assert!(
                err <= 1e-5 * magnitude + s_err + 1e-6,
                "{dtype} trial {trial}: {} vs {exact} (err {err}, magnitude {magnitude})",
                got[0]
            );
        }
    }
}

/// Interleaved kernels: every table equals the scalar one bit for bit, and the scalar one
/// equals the f64 product of the decoded operands (within f32 accumulation error).
#[test]
fn packed_kernels_agree() {
    use crate::cpu::quant::matmul::QuantMatrix;
    use crate::cpu::quant::packed::{Layout, PreparedMatrix, GROUP};

    let mut rng = Rng(17);
    for dtype in [DType::Q4_0, DType::Q4_1, DType::Q8_0] {
        let format = act_format(dtype).unwrap();
        let (nb, rows) = (12, GROUP);
        let cols = nb * 32;
        let data = random_blocks(dtype, rows * nb, &mut rng);
        let w = QuantMatrix {
            dtype,
            rows,
            cols,
            data: &data,
        };
        let p = PreparedMatrix::new(&w).unwrap();
        let Layout::Interleaved(g) = p.layout() else {
            panic!("{dtype} not interleaved")
        };
        // Enough rows for full tiles and every remainder; fewer than 16 valid columns too.
        let n_max = 11;
        let x = random_acts(n_max * cols, &mut rng);
        let mut acts = ActBuffer::default();
        acts.quantize(&Serial, format, &x, n_max, cols);
        let xs: Vec<ActRow<'_>> = (0..n_max).map(|r| acts.row(r)).collect();
        for n in 1..=n_max {
            for valid in [GROUP, 9, 1] {
                let ld = GROUP + 3;
                let mut want = vec![f32::NAN; n * ld];
                // SAFETY: sizes as built above; no CPU feature needed.
                unsafe {
                    SCALAR.get_packed(dtype).unwrap()(g, nb, &xs[..n], want.as_mut_ptr(), ld, valid)
                };
                for set in available() {
                    let mut got = vec![f32::NAN; n * ld];
                    // SAFETY: `available()` lists only tables this CPU supports.
                    unsafe {
                        set.get_packed(dtype).unwrap()(g, nb, &xs[..n], got.as_mut_ptr(), ld, valid)
                    };
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{} {dtype} rows {n} valid {valid}",
                        set.name
                    );
                    // Row j of a batch equals row j alone (the tile it lands in changes nothing).
                    for j in 0..n {
                        let mut alone = vec![f32::NAN; ld];
                        // SAFETY: as above.
                        unsafe {
                            set.get_packed(dtype).unwrap()(
                                g,
                                nb,
                                &xs[j..j + 1],
                                alone.as_mut_ptr(),
                                ld,
                                valid,
                            )
                        };
                        assert_eq!(bits(&alone[..valid]), bits(&got[j * ld..j * ld + valid]));
                        assert!(got[j * ld + valid..(j + 1) * ld].iter().all(|v| v.is_nan()));
                    }
                }
            }
        }
        let mut want = [[0.0f32; GROUP]; 1];
        // SAFETY: as above.
        unsafe {
            SCALAR.get_packed(dtype).unwrap()(g, nb, &xs[..1], want[0].as_mut_ptr(), GROUP, GROUP)
        };
        let xf = decoded_acts(format, &xs[0]);
        let rb = data.len() / rows;
        for r in 0..rows {
            let mut wf = vec![0.0f32; cols];
            dequantize_row(dtype, &data[r * rb..(r + 1) * rb], &mut wf).unwrap();
            let exact: f64 = wf.iter().zip(&xf).map(|(&a, &b)| a as f64 * b).sum();
            let mag: f64 = wf
                .iter()
                .zip(&xf)
                .map(|(&a, &b)| (a as f64 * b).abs())
                .sum();
            let err = (want[0][r] as f64 - exact).abs();
            // Q4_1's min term uses the f16 `s`: allow 1e-3 of the magnitude there.
            let tol = if dtype == DType::Q4_1 { 1e-3 } else { 1e-5 } * mag + 1e-6;
            assert!(err <= tol, "{dtype} row {r}: {} vs {exact}", want[0][r]);
        }
    }
}
