//! `quant_matmul` against `(dequantized W) · x` in f64, within the error that quantizing the
//! activations to 8 bits allows; batched == single; validation errors.

use ferrum_backend::cpu::quant::{
    dequantize_row, quant_matmul, quant_matmul_prepared, PreparedMatrix, QuantMatrix,
};
use ferrum_types::DType;

mod quant_common;
use quant_common::{random_acts, random_blocks, read_bytes, Rng};

const TYPES: [DType; 6] = [
    DType::Q4_0,
    DType::Q4_1,
    DType::Q8_0,
    DType::Q4K,
    DType::Q5K,
    DType::Q6K,
];

fn dequantize(w: &QuantMatrix<'_>) -> Vec<f32> {
    let rb = w.row_bytes().unwrap();
    let mut out = vec![0.0f32; w.rows * w.cols];
    for (o, row) in out.chunks_mut(w.cols).zip(w.data.chunks(rb)) {
        dequantize_row(w.dtype, row, o).unwrap();
    }
    out
}

/// Activation block size of the format `dtype` is multiplied against.
fn act_block(dtype: DType) -> usize {
    dtype.block_size()
}

/// Checks every output against the f64 product, with the bound
/// `Σ_i |W_oi| · 0.6 · amax(block of i) / 127` (rounding to the nearest of 255 levels, plus the
/// f16 scale) and a small relative slack for f32 accumulation and Q4_1's f16 `s`.
fn check(w: &QuantMatrix<'_>, x: &[f32], n: usize, got: &[f32]) {
    let wf = dequantize(w);
    let bs = act_block(w.dtype);
    for r in 0..n {
        let xr = &x[r * w.cols..(r + 1) * w.cols];
        let step: Vec<f64> = xr
            .chunks(bs)
            .flat_map(|b| {
                let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
                std::iter::repeat_n(0.6 * amax / 127.0, bs)
            })
            .collect();
        for o in 0..w.rows {
            let wr = &wf[o * w.cols..(o + 1) * w.cols];
            let exact: f64 = wr.iter().zip(xr).map(|(&a, &b)| a as f64 * b as f64).sum();
            let mag: f64 = wr
                .iter()
                .zip(xr)
                .map(|(&a, &b)| (a as f64 * b as f64).abs())
                .sum();
            let bound: f64 = wr
                .iter()
                .zip(&step)
                .map(|(&a, &s)| a.abs() as f64 * s)
                .sum::<f64>()
                + 2e-3 * mag
                + 1e-6;
            let g = got[r * w.rows + o] as f64;
            assert!(
                (g - exact).abs() <= bound,
                "{} r{r} o{o}: {g} vs {exact} (bound {bound})",
                w.dtype
            );
        }
    }
}

#[test]
fn matches_dequantized_product_for_every_type() {
    let mut rng = Rng(3);
    for dtype in TYPES {
        let cols = if dtype.block_size() == 256 { 512 } else { 192 };
        let rows = 37; // not a multiple of any chunk or tile size
        let data = random_blocks(dtype, rows * cols / dtype.block_size(), &mut rng);
        let w = QuantMatrix {
            dtype,
            rows,
            cols,
            data: &data,
        };
        for n in [1usize, 3, 9] {
            let x = random_acts(n * cols, &mut rng);
            let mut out = vec![f32::NAN; n * rows];
            quant_matmul(&x, n, &w, &mut out).unwrap();
            check(&w, &x, n, &out);
            let prepared = PreparedMatrix::new(&w).unwrap();
            let mut out_p = vec![f32::NAN; n * rows];
            quant_matmul_prepared(&x, n, &prepared, &mut out_p).unwrap();
            check(&w, &x, n, &out_p);
        }
    }
}

#[test]
fn real_weights_of_the_default_model() {
    let mut rng = Rng(5);
    for (name, dtype, cols) in [
        ("real_q4_1_ffn_down_rows0_1", DType::Q4_1, 1536),
        ("real_q8_0_token_embd_rows0_1", DType::Q8_0, 576),
    ] {
        let data = read_bytes(&format!("{name}.bin"));
        let w = QuantMatrix {
            dtype,
            rows: 2,
            cols,
            data: &data,
        };
        let x = random_acts(5 * cols, &mut rng);
        let mut out = vec![0.0; 10];
        quant_matmul(&x, 5, &w, &mut out).unwrap();
        check(&w, &x, 5, &out);
    }
}

#[test]
fn batched_equals_single_bit_for_bit() {
    let mut rng = Rng(9);
    for dtype in TYPES {
        let cols = if dtype.block_size() == 256 { 768 } else { 576 };
        let rows = 300;
        let data = random_blocks(dtype, rows * cols / dtype.block_size(), &mut rng);
        let w = QuantMatrix {
            dtype,
            rows,
            cols,
            data: &data,
        };
        let n = 11;
        let x = random_acts(n * cols, &mut rng);
        let prepared = PreparedMatrix::new(&w).unwrap();
        let mut batched = vec![0.0f32; n * rows];
        quant_matmul(&x, n, &w, &mut batched).unwrap();
        let mut batched_p = vec![0.0f32; n * rows];
        quant_matmul_prepared(&x, n, &prepared, &mut batched_p).unwrap();
        for r in 0..n {
            let xr = &x[r * cols..(r + 1) * cols];
            let mut single = vec![0.0f32; rows];
            quant_matmul(xr, 1, &w, &mut single).unwrap();
            assert_eq!(single, batched[r * rows..(r + 1) * rows], "{dtype} row {r}");
            quant_matmul_prepared(xr, 1, &prepared, &mut single).unwrap();
            assert_eq!(
                single,
                batched_p[r * rows..(r + 1) * rows],
                "{dtype} prepared row {r}"
            );
        }
    }
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let data = vec![0u8; 2 * 20];
    let w = QuantMatrix {
        dtype: DType::Q4_1,
        rows: 2,
        cols: 32,
        data: &data,
    };
    let mut out = vec![0.0; 2];
    assert!(quant_matmul(&[0.0; 31], 1, &w, &mut out).is_err());
    assert!(quant_matmul(&[0.0; 32], 1, &w, &mut out[..1]).is_err());
    let short = QuantMatrix {
        data: &data[..39],
        ..w
    };
    assert!(quant_matmul(&[0.0; 32], 1, &short, &mut out).is_err());
    let partial = QuantMatrix { cols: 48, ..w };
    assert!(quant_matmul(&[0.0; 48], 1, &partial, &mut out).is_err());
    let dense = QuantMatrix {
        dtype: DType::F32,
        rows: 2,
        cols: 10,
        data: &[0u8; 80],
    };
    assert!(quant_matmul(&[0.0; 10], 1, &dense, &mut out).is_err());
    // Zero rows is a valid empty product.
    assert!(quant_matmul(&[], 0, &w, &mut []).is_ok());
}
