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

/// silu(x · gateᵀ) · (x · upᵀ) as the kernels round it (each projection, then silu, then the
/// product), with a magnitude for the bound that covers both projections.
fn silu_reference(x: &[f32], wg: &[f32], wu: &[f32], rows: usize, k: usize) -> Vec<(f64, f64)> {
    let g = reference(x, wg, None, rows, k);
    let u = reference(x, wu, None, rows, k);
    g.iter()
        .zip(&u)
        .map(|(&(g, gm), &(u, um))| {
            let s = bf(g / (1.0 + (-g).exp()));
            (bf(s * u), gm.max(um) * (1.0 + u.abs()))
        })
        .collect()
}

/// One device matrix per host one: `widths[i]` rows of `k`.
fn weights(b: &CudaBackend, host: &[Vec<f32>], widths: &[usize], k: usize) -> Vec<CudaWeight> {
    host.iter()
        .zip(widths)
        .map(|(w, &n)| weight(b, n, k, w))
        .collect()
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

/// One output buffer of `rows` rows per segment width (q, k, v).
fn outputs(b: &CudaBackend, rows: usize, widths: &[usize]) -> Vec<CudaActivations> {
    widths
        .iter()
        .map(|&n| b.new_activations(rows, n).expect("out"))
        .collect()
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
        let wd = weights(&b, &ws, &widths, k);
        let bd: Vec<CudaWeight> = bs
            .iter()
            .zip(widths)
            .map(|(v, n)| weight(&b, 1, n, v))
            .collect();
        let mut outs = outputs(&b, rows, &widths);
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
        let want = silu_reference(&x, &wg, &wu, rows, k);
        check(
            &format!("gate/up silu rows={rows}"),
            &b.to_host(&out, rows).expect("host"),
            &want,
            mlp_sum_err,
        );
    }
}

/// `rmsnorm(h) * g` per row in f64, returned as f32 (unrounded to bf16: the folded form never
/// rounds it).
fn normed_f64(h: &[f32], g: &[f32], rows: usize, k: usize, eps: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * k);
    for r in 0..rows {
        let row = &h[r * k..(r + 1) * k];
        let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / k as f64;
        let s = 1.0 / (ms + eps).sqrt();
        out.extend(
            row.iter()
                .zip(g)
                .map(|(&v, &w)| (v as f64 * s * w as f64) as f32),
        );
    }
    out
}

/// The residual stream at decode row counts: `linear_residual` adds into it in the projection's
/// own launch exactly as a linear followed by the add does, and the RMSNorm folded into the
/// q/k/v and gate/up projections gives the norm-then-project result within one rounding. The
/// separate ops (fused forms off) are checked against the same reference with a bound that
/// allows their two extra roundings of the normalized input.
#[test]
fn residual_add_and_folded_norm_match_the_separate_ops() {
    let Some(mut b) = cuda() else { return };
    b.set_small_batch_gemv(true);
    let mut rng = Lcg(23);
    let (k, eps) = (512usize, 1e-6f32);
    // Two roundings of each normalized input (to bf16 after the scale, again after the weight).
    let separate_sum_err = GEMV_SUM_ERR + 2.0 / 256.0;
    for rows in [1, 2, 3, 8, 12] {
        let h: Vec<f32> = rng.vec_bf16(rows * k).iter().map(|v| v * 4.0).collect();
        let g = rng.vec_bf16(k);
        let gd = weight(&b, 1, k, &g);
        // o-like projection into the stream: [k, k].
        let a = rng.vec_bf16(rows * k);
        let wo = rng.vec_bf16(k * k);
        let (ad, wod) = (acts(&b, rows, k, &a), weight(&b, k, k, &wo));
        let mut streams = Vec::new();
        for fused in [true, false] {
            b.set_fused_norm(fused);
            let mut res = acts(&b, rows, k, &h);
            let mut delta = b.new_activations(rows, k).expect("delta");
            let mut normed = b.new_activations(rows, k).expect("normed");
            let added = b
                .linear_residual(&ad, &wod, rows, &mut delta, &mut res)
                .expect("linear_residual");
            assert_eq!(added, fused && rows <= 8, "rows={rows} fused={fused}");
            b.residual_norm(
                &mut res,
                (!added).then_some(&delta),
                &gd,
                eps,
                rows,
                &mut normed,
            )
            .expect("residual_norm");
            streams.push(b.to_host(&res, rows).expect("host"));
        }
        assert_eq!(streams[0], streams[1], "residual stream rows={rows}");
        let h2 = &streams[0];
        let x = normed_f64(h2, &g, rows, k, eps as f64);

        let widths = [256usize, 64, 63];
        let ws: Vec<Vec<f32>> = widths.iter().map(|&n| rng.vec_bf16(n * k)).collect();
        let wd = weights(&b, &ws, &widths, k);
        let n = 301;
        let (wg, wu) = (rng.vec_bf16(n * k), rng.vec_bf16(n * k));
        let (gwd, uwd) = (weight(&b, n, k, &wg), weight(&b, n, k, &wu));
        let silu_want = silu_reference(&x, &wg, &wu, rows, k);
        for fused in [true, false] {
            b.set_fused_norm(fused);
            // The bound of a projection that runs as a GEMV up to `gemv_rows` rows: the folded
            // norm there, else the separate norm's extra roundings (and cuBLAS's beyond).
            let sum_err = |gemv_rows: usize| match (fused && rows <= gemv_rows, rows <= gemv_rows) {
                (true, _) => GEMV_SUM_ERR,
                (false, true) => separate_sum_err,
                (false, false) => separate_sum_err + CUBLAS_SUM_ERR,
            };
            let mut res = acts(&b, rows, k, h2);
            let mut normed = b.new_activations(rows, k).expect("normed");
            let mut outs = outputs(&b, rows, &widths);
            let [q, kk, v] = &mut outs[..] else {
                unreachable!()
            };
            b.norm_linear_qkv(
                &mut res,
                None,
                (&gd, eps),
                [(&wd[0], None), (&wd[1], None), (&wd[2], None)],
                rows,
                &mut normed,
                q,
                kk,
                v,
            )
            .expect("norm_linear_qkv");
            for (i, out) in outs.iter().enumerate() {
                check(
                    &format!("norm + qkv segment {i} rows={rows} fused={fused}"),
                    &b.to_host(out, rows).expect("host"),
                    &reference(&x, &ws[i], None, rows, k),
                    sum_err(8),
                );
            }
            let mut gate_buf = b.new_activations(rows, n).expect("gate");
            let mut up_buf = b.new_activations(rows, n).expect("up");
            let mut out = b.new_activations(rows, n).expect("act");
            b.norm_gate_up_silu(
                &mut res,
                None,
                (&gd, eps),
                &gwd,
                &uwd,
                rows,
                &mut normed,
                &mut gate_buf,
                &mut up_buf,
                &mut out,
            )
            .expect("norm_gate_up_silu");
            check(
                &format!("norm + gate/up silu rows={rows} fused={fused}"),
                &b.to_host(&out, rows).expect("host"),
                &silu_want,
                sum_err(2),
            );
            // The stream itself is only read.
            assert_eq!(&b.to_host(&res, rows).expect("host"), h2, "rows={rows}");
        }
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
