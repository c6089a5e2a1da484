//! CUDA linear layers on a GPU: the small-batch GEMV kernels (1 to 8 rows), their fused q/k/v
//! and gate/up·silu forms, and cuBLAS (more rows, or `k` not a multiple of 8), against an f64
//! host reference computed from the same bf16-rounded inputs. Skipped, with a note, where no
//! CUDA device is usable.
//!
//! Error bound: the GEMV kernels accumulate in f32 (products of bf16 values are exact in f32,
//! the summation order differs: ~1e-6 · Σ|xᵢwᵢ|) and round to bf16 once (2⁻⁸ relative); a bias
//! or the silu product adds one more rounding of the same size. The check allows
//! 2⁻⁶·|want| + 1e-5·Σ|xᵢwᵢ|. cuBLAS may also reduce split-k partial sums in bf16 (as PyTorch
//! allows by default), each rounding off by at most 2⁻⁹ of its partial's Σ|xᵢwᵢ|: its check adds
//! 2⁻⁹·Σ|xᵢwᵢ|. A wrong row, column, segment or missing bias is off by about |want| ~ √k / 3.
//!
//! `gemv_timing_real_shapes` (ignored; `--ignored --nocapture`) prints GEMV and cuBLAS times
//! and bandwidths for the Qwen3-4B and Llama-3-8B layer shapes.

mod gpu_common;
use gpu_common::{cuda, Lcg};
use std::borrow::Cow;
use std::time::Instant;

use ferrum_backend::cuda::{CudaActivations, CudaBackend, CudaWeight};
use ferrum_backend::{Backend, HostTensor};
use ferrum_types::DType;

fn bf(x: f64) -> f64 {
    half::bf16::from_f64(x).to_f64()
}

fn weight(b: &CudaBackend, rows: usize, cols: usize, data: &[f32]) -> CudaWeight {
    let bytes: Vec<u8> = data
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    let shape = if rows == 1 {
        vec![cols]
    } else {
        vec![rows, cols]
    };
    let t = HostTensor {
        dtype: DType::BF16,
        shape,
        data: Cow::Owned(bytes),
    };
    b.load_weight(&t).expect("weight")
}

/// `(value, Σ|xᵢwᵢ|)` of every output, row-major `[rows, n]`, rounded to bf16 as a GEMM's.
fn reference(x: &[f32], w: &[f32], bias: Option<&[f32]>, rows: usize, k: usize) -> Vec<(f64, f64)> {
    let n = w.len() / k;
    let mut out = Vec::with_capacity(rows * n);
    for r in 0..rows {
        for j in 0..n {
            let (mut s, mut mag) = (0.0f64, 0.0f64);
            for i in 0..k {
                let p = x[r * k + i] as f64 * w[j * k + i] as f64;
                s += p;
                mag += p.abs();
            }
            let mut v = bf(s);
            if let Some(b) = bias {
                v = bf(v + b[j] as f64);
            }
            out.push((v, mag));
        }
    }
    out
}

/// `sum_err`: the allowed error per unit of Σ|xᵢwᵢ|.
fn check(what: &str, got: &[f32], want: &[(f64, f64)], sum_err: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &(w, mag))) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        let bound = w.abs() / 64.0 + sum_err * mag + 1e-6;
        if err / bound > worst.0 {
            worst = (err / bound, i);
        }
        assert!(
            err <= bound,
            "{what}: element {i}: got {g}, want {w} (error {err:.3e}, bound {bound:.3e})"
        );
    }
    eprintln!(
        "{what}: worst error {:.2} of the bound (element {})",
        worst.0, worst.1
    );
}

const GEMV_SUM_ERR: f64 = 1e-5;
const CUBLAS_SUM_ERR: f64 = 1e-5 + 1.0 / 512.0;

fn acts(b: &CudaBackend, rows: usize, cols: usize, data: &[f32]) -> CudaActivations {
    b.activations_from_host(rows, cols, data)
        .expect("activations")
}

#[test]
fn linear_matches_the_host_reference_on_both_paths() {
    let Some(mut b) = cuda() else { return };
    let mut rng = Lcg(7);
    // (k, n): widths that fill whole blocks, an odd output count, a long k, and k % 8 != 0
    // (always cuBLAS).
    for (k, n) in [(256, 300), (264, 7), (4104, 130), (260, 33)] {
        for rows in [1, 2, 3, 5, 8, 9, 16] {
            for with_bias in [false, true] {
                let x = rng.vec_bf16(rows * k);
                let w = rng.vec_bf16(n * k);
                let bias = rng.vec_bf16(n);
                let want = reference(&x, &w, with_bias.then_some(&bias[..]), rows, k);
                let (xd, wd, bd) = (
                    acts(&b, rows, k, &x),
                    weight(&b, n, k, &w),
                    weight(&b, 1, n, &bias),
                );
                for gemv in [true, false] {
                    b.set_small_batch_gemv(gemv);
                    let mut out = b.new_activations(rows, n).expect("out");
                    b.linear(&xd, &wd, with_bias.then_some(&bd), rows, &mut out)
                        .expect("linear");
                    let got = b.to_host(&out, rows).expect("to host");
                    check(
                        &format!("linear k={k} n={n} rows={rows} bias={with_bias} gemv={gemv}"),
                        &got,
                        &want,
                        if gemv && rows <= 8 && k % 8 == 0 {
                            GEMV_SUM_ERR
                        } else {
                            CUBLAS_SUM_ERR
                        },
                    );
                }
            }
        }
    }
}

#[test]
fn fused_qkv_and_gate_up_match_the_separate_ops() {
    let Some(mut b) = cuda() else { return };
    b.set_small_batch_gemv(true);
    let mut rng = Lcg(11);
    let k = 512;
    for rows in [1, 2, 4, 8, 12] {
        let x = rng.vec_bf16(rows * k);
        let xd = acts(&b, rows, k, &x);
        // q, k, v of different widths (one odd), with biases as Qwen2 has them.
        let widths = [256, 64, 63];
        let ws: Vec<Vec<f32>> = widths.iter().map(|&n| rng.vec_bf16(n * k)).collect();
        let bs: Vec<Vec<f32>> = widths.iter().map(|&n| rng.vec_bf16(n)).collect();
        let wd: Vec<CudaWeight> = ws
            .iter()
            .zip(widths)
            .map(|(w, n)| weight(&b, n, k, w))
            .collect();
        let bd: Vec<CudaWeight> = bs
            .iter()
            .zip(widths)
            .map(|(v, n)| weight(&b, 1, n, v))
            .collect();
        let mut outs: Vec<CudaActivations> = widths
            .iter()
            .map(|&n| b.new_activations(rows, n).expect("out"))
            .collect();
        let [q, kk, v] = &mut outs[..] else {
            unreachable!()
        };
        b.linear_qkv(
            &xd,
            [
                (&wd[0], Some(&bd[0])),
                (&wd[1], Some(&bd[1])),
                (&wd[2], Some(&bd[2])),
            ],
            rows,
            q,
            kk,
            v,
        )
        .expect("qkv");
        // q/k/v take one GEMV launch up to 8 rows, gate/up up to 2; cuBLAS beyond.
        let sum_err = if rows <= 8 {
            GEMV_SUM_ERR
        } else {
            CUBLAS_SUM_ERR
        };
        let mlp_sum_err = if rows <= 2 {
            GEMV_SUM_ERR
        } else {
            CUBLAS_SUM_ERR
        };
        for (i, out) in outs.iter().enumerate() {
            let want = reference(&x, &ws[i], Some(&bs[i]), rows, k);
            check(
                &format!("qkv segment {i} rows={rows}"),
                &b.to_host(out, rows).expect("host"),
                &want,
                sum_err,
            );
        }

        let n = 301;
        let (wg, wu) = (rng.vec_bf16(n * k), rng.vec_bf16(n * k));
        let (gd, ud) = (weight(&b, n, k, &wg), weight(&b, n, k, &wu));
        let mut gate_buf = b.new_activations(rows, n).expect("gate");
        let mut up_buf = b.new_activations(rows, n).expect("up");
        let mut out = b.new_activations(rows, n).expect("act");
        b.gate_up_silu(&xd, &gd, &ud, rows, &mut gate_buf, &mut up_buf, &mut out)
            .expect("gate_up_silu");
        let g = reference(&x, &wg, None, rows, k);
        let u = reference(&x, &wu, None, rows, k);
        let want: Vec<(f64, f64)> = g
            .iter()
            .zip(&u)
            .map(|(&(g, gm), &(u, um))| {
                let s = bf(g / (1.0 + (-g).exp()));
                (bf(s * u), gm.max(um) * (1.0 + u.abs()))
            })
            .collect();
        check(
            &format!("gate/up silu rows={rows}"),
            &b.to_host(&out, rows).expect("host"),
            &want,
            mlp_sum_err,
        );
    }
}

/// Median seconds of `f` over `iters` runs after a warm-up, the device synchronized around each.
fn time(b: &CudaBackend, iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..5 {
        f();
    }
    b.synchronize().expect("sync");
    let mut t = Vec::with_capacity(iters);
    for _ in 0..iters {
        let s = Instant::now();
        for _ in 0..20 {
            f();
        }
        b.synchronize().expect("sync");
        t.push(s.elapsed().as_secs_f64() / 20.0);
    }
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

#[test]
#[ignore = "timing; run with --ignored --nocapture on a GPU"]
fn gemv_timing_real_shapes() {
    let Some(mut b) = cuda() else { return };
    let mut rng = Lcg(3);
    // (name, k, n): Qwen3-4B and Llama-3-8B projections and heads.
    let shapes = [
        ("qwen3-4b q", 2560, 4096),
        ("qwen3-4b k/v", 2560, 1024),
        ("qwen3-4b o", 4096, 2560),
        ("qwen3-4b gate/up", 2560, 9728),
        ("qwen3-4b down", 9728, 2560),
        ("qwen3-4b head", 2560, 151936),
        ("llama3-8b q/o", 4096, 4096),
        ("llama3-8b k/v", 4096, 1024),
        ("llama3-8b gate/up", 4096, 14336),
        ("llama3-8b down", 14336, 4096),
        ("llama3-8b head", 4096, 128256),
    ];
    for (name, k, n) in shapes {
        let w = weight(&b, n, k, &rng.vec_bf16(n * k));
        for rows in [1, 2, 4, 8] {
            let x = acts(&b, rows, k, &rng.vec_bf16(rows * k));
            let mut out = b.new_activations(rows, n).expect("out");
            let mut line = format!("{name:<18} {k:>6}->{n:<7} rows {rows}:");
            for gemv in [true, false] {
                b.set_small_batch_gemv(gemv);
                let s = time(&b, 15, || {
                    b.linear(&x, &w, None, rows, &mut out).expect("linear");
                });
                let gbs = (n * k * 2) as f64 / s / 1e9;
                line.push_str(&format!(
                    "  {} {:>7.1} us {:>6.0} GB/s",
                    if gemv { "gemv" } else { "cublas" },
                    s * 1e6,
                    gbs
                ));
            }
            eprintln!("{line}");
        }
    }
}
