//! CUDA paged attention (tiled prefill and split decode kernels) on a GPU, against a naive f32
//! attention computed on the host from the same bf16-rounded inputs. Each test is skipped, with
//! a note, where no CUDA device is usable.
//!
//! - `tiled_kernels_match_naive_attention`: varlen batches that mix whole prompts, prefill
//!   chunks after earlier context and decode tokens (contexts up to 3000), block tables
//!   scattered over the cache, GQA ratios 1, 4, 6, 8 and 12, head sizes 16, 32, 64, 96, 128 and
//!   256; also an all-decode batch whose long contexts take the split-and-merge path. The
//!   reference kernel (`attention_reference`) is checked against the same bound.
//! - `fused_prologue_matches_the_separate_ops`: the one-launch q/k norm + rotary + KV write
//!   against `head_rms_norm`, `rotary` and `write_kv` run one by one on the same inputs (head
//!   sizes 64, 128 and 256, with and without the norm, GQA): the same bits (1 bf16 ulp allowed
//!   where the compiler fuses a multiply-add differently), and other layers untouched.
//! - `one_head_decode_equals_grouped_decode`: decode steps that take the one-head kernel (a
//!   few tokens with contexts up to 1,024, or one query head per KV head at any context)
//!   against the same steps through the grouped kernel (`attention_decode_grouped`): the same
//!   bits, as both perform the same additions in the same order.
//! - `attention_timing_llama3_8b` (ignored; `--ignored --nocapture`): median kernel time of the
//!   tiled and the reference kernels for Llama-3-8B shapes.
//!
//! Error bound, per output element `want = Σ pⱼ vⱼ / Σ pⱼ` with `mag = Σ pⱼ |vⱼ| / Σ pⱼ`
//! (≤ max |v| = 1):
//! - every kernel accumulates scores, sums and outputs in f32 (products of bf16 inputs are exact
//!   in f32; another summation order and the fast exponential move the result by ~1e-6·mag)
//!   and rounds the output to bf16 once: at most 2⁻⁸·|want| (relative rounding error of bf16);
//! - the tensor-core prefill kernel also rounds the weights pⱼ to bf16 for the P·V product, and
//!   sums the same rounded weights, so its result is an exact weighted average with weights off
//!   by at most 2⁻⁸ relative: at most 2⁻⁸·(mag + |want|) more.
//!
//! Hence |got − want| ≤ 2⁻⁷·|want| + 2⁻⁸·mag + 1e-5; the check allows
//! 1e-2·|want| + 5e-3·mag + 1e-5. A wrong key, head, mask or normalisation shows up as errors of
//! order 1e-1·mag.

mod gpu_common;
use gpu_common::{cuda, Lcg};
use std::time::Instant;

use ferrum_backend::cuda::{CudaActivations, CudaBackend, CudaKvCache};
use ferrum_backend::{
    AttentionBatch, AttentionParams, Backend, HostTensor, KvCacheSpec, RopeFrequencies, RopeStyle,
};
use rayon::prelude::*;

const BLOCK: usize = 16;

fn bf16_round(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// `[rows, cols]` activations on the device holding `data` rounded to bf16: the data is
/// loaded as an embedding table and gathered with identity ids, the backend's only path from
/// the host into activations.
fn upload(b: &CudaBackend, rows: usize, cols: usize, data: &[f32]) -> CudaActivations {
    b.activations_from_host(rows, cols, data)
        .expect("activations")
}

/// One attention problem: heads, head size and `(context after the step, queries in the step)`
/// per sequence.
struct Case {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    seqs: Vec<(usize, usize)>,
}

/// Host copies (bf16-rounded) of what the device holds.
struct Problem {
    case: Case,
    /// Per sequence, `[ctx, kv_heads · head_dim]`.
    keys: Vec<Vec<f32>>,
    vals: Vec<Vec<f32>>,
    /// `[tokens, heads · head_dim]`.
    q: Vec<f32>,
    tables: Vec<Vec<u32>>,
    num_blocks: usize,
}

/// Case `i` of a test's list, given as (heads, KV heads, head size, (context, queries) per
/// sequence): its problem with inputs from `seed`, and its name for messages.
fn numbered_problem(
    i: usize,
    seed: u64,
    (heads, kv_heads, head_dim, seqs): (usize, usize, usize, Vec<(usize, usize)>),
) -> (Problem, String) {
    let what = format!("case {i} ({heads} heads, {kv_heads} kv, head_dim {head_dim})");
    let case = Case {
        heads,
        kv_heads,
        head_dim,
        seqs,
    };
    (Problem::new(case, seed), what)
}

impl Problem {
    fn new(case: Case, seed: u64) -> Self {
        let mut rng = Lcg(seed);
        let width = case.kv_heads * case.head_dim;
        let blocks: Vec<usize> = case.seqs.iter().map(|s| s.0.div_ceil(BLOCK)).collect();
        // A few blocks nobody owns, and every sequence's blocks scattered over the cache by a
        // random permutation of the block ids.
        let num_blocks = blocks.iter().sum::<usize>() + 5;
        let mut ids: Vec<u32> = (0..num_blocks as u32).collect();
        for i in (1..ids.len()).rev() {
            ids.swap(i, rng.below(i + 1));
        }
        let mut next = ids.into_iter();
        let tables = blocks
            .iter()
            .map(|&n| next.by_ref().take(n).collect())
            .collect();
        let mut rand = |n: usize, amp: f32| -> Vec<f32> {
            (0..n).map(|_| bf16_round(amp * rng.next())).collect()
        };
        let keys = case.seqs.iter().map(|s| rand(s.0 * width, 1.0)).collect();
        let vals = case.seqs.iter().map(|s| rand(s.0 * width, 1.0)).collect();
        let tokens: usize = case.seqs.iter().map(|s| s.1).sum();
        // Larger queries than keys give peaked softmaxes, not only near-uniform averages.
        let q = rand(tokens * case.heads * case.head_dim, 3.0);
        Problem {
            case,
            keys,
            vals,
            q,
            tables,
            num_blocks,
        }
    }

    fn slot(&self, s: usize, t: usize) -> u32 {
        self.tables[s][t / BLOCK] * BLOCK as u32 + (t % BLOCK) as u32
    }

    fn params(&self) -> AttentionParams {
        AttentionParams {
            num_heads: self.case.heads,
            num_kv_heads: self.case.kv_heads,
            head_dim: self.case.head_dim,
            scale: 1.0 / (self.case.head_dim as f32).sqrt(),
        }
    }

    /// The naive causal attention of every step token, `[tokens, heads · head_dim]`, and the
    /// magnitude `Σ pⱼ |vⱼ| / Σ pⱼ` of each element (see the module documentation).
    fn reference(&self) -> (Vec<f32>, Vec<f32>) {
        let c = &self.case;
        let (hd, nh, nkv) = (c.head_dim, c.heads, c.kv_heads);
        let scale = self.params().scale;
        let mut rows = Vec::new(); // (seq, query index in the step, token row)
        for (s, &(_, ql)) in c.seqs.iter().enumerate() {
            for i in 0..ql {
                rows.push((s, i, rows.len()));
            }
        }
        rows.par_iter()
            .flat_map_iter(|&(s, i, row)| {
                let (ctx, ql) = c.seqs[s];
                let visible = ctx - ql + i + 1;
                let mut out = vec![0f32; nh * hd];
                let mut mag = vec![0f32; nh * hd];
                for h in 0..nh {
                    let g = h / (nh / nkv);
                    let qv = &self.q[(row * nh + h) * hd..(row * nh + h + 1) * hd];
                    let kv = |j: usize| (j * nkv + g) * hd;
                    let scores: Vec<f32> = (0..visible)
                        .map(|j| {
                            let k = &self.keys[s][kv(j)..kv(j) + hd];
                            qv.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale
                        })
                        .collect();
                    let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let p: Vec<f32> = scores.iter().map(|x| (x - m).exp()).collect();
                    let z: f32 = p.iter().sum();
                    let o = &mut out[h * hd..(h + 1) * hd];
                    let a = &mut mag[h * hd..(h + 1) * hd];
                    for (j, pj) in p.iter().enumerate() {
                        let v = &self.vals[s][kv(j)..kv(j) + hd];
                        for ((od, ad), vd) in o.iter_mut().zip(a.iter_mut()).zip(v) {
                            *od += pj * vd;
                            *ad += pj * vd.abs();
                        }
                    }
                    for (od, ad) in o.iter_mut().zip(a.iter_mut()) {
                        *od /= z;
                        *ad /= z;
                    }
                }
                out.into_iter().zip(mag)
            })
            .unzip()
    }
}

/// The cache and step batch of a problem on the device; runs `attend` and returns its output.
fn run_on_device(
    b: &CudaBackend,
    p: &Problem,
    attend: impl Fn(
        &CudaBackend,
        &CudaKvCache,
        &ferrum_backend::cuda::CudaBatch,
        &AttentionParams,
        &CudaActivations,
        &mut CudaActivations,
    ) -> ferrum_backend::Result<()>,
) -> Vec<f32> {
    let c = &p.case;
    let width = c.kv_heads * c.head_dim;
    let spec = KvCacheSpec {
        num_layers: 1,
        num_kv_heads: c.kv_heads,
        head_dim: c.head_dim,
        block_size: BLOCK,
        num_blocks: p.num_blocks,
    };
    let mut cache = b.new_kv_cache(&spec).expect("cache");
    // The whole context (earlier steps' and this step's keys) in one write.
    let (mut slots, mut ks, mut vs) = (Vec::new(), Vec::new(), Vec::new());
    for (s, &(ctx, _)) in c.seqs.iter().enumerate() {
        for t in 0..ctx {
            slots.push(p.slot(s, t));
        }
        ks.extend_from_slice(&p.keys[s]);
        vs.extend_from_slice(&p.vals[s]);
    }
    let n_ctx = slots.len();
    let zeros = vec![0u32; n_ctx];
    let write = AttentionBatch {
        input_ids: &zeros,
        positions: &zeros,
        slot_mapping: &slots,
        query_start_loc: &[0, n_ctx as u32],
        seq_lens: &[n_ctx as u32],
        block_tables: &[],
        max_blocks_per_seq: 0,
        logits_indices: &[],
    };
    let write = b.prepare_batch(&write).expect("write batch");
    let (ka, va) = (upload(b, n_ctx, width, &ks), upload(b, n_ctx, width, &vs));
    b.write_kv(&mut cache, 0, &write, &ka, &va)
        .expect("write_kv");

    let max_blocks = p.tables.iter().map(Vec::len).max().unwrap_or(0);
    let (mut ids, mut positions, mut step_slots, mut qsl) = (vec![], vec![], vec![], vec![0u32]);
    let mut bt = Vec::new();
    for (s, &(ctx, ql)) in c.seqs.iter().enumerate() {
        for t in ctx - ql..ctx {
            ids.push(0);
            positions.push(t as u32);
            step_slots.push(p.slot(s, t));
        }
        qsl.push(ids.len() as u32);
        bt.extend_from_slice(&p.tables[s]);
        bt.resize((s + 1) * max_blocks, 0);
    }
    let seq_lens: Vec<u32> = c.seqs.iter().map(|s| s.0 as u32).collect();
    let step = AttentionBatch {
        input_ids: &ids,
        positions: &positions,
        slot_mapping: &step_slots,
        query_start_loc: &qsl,
        seq_lens: &seq_lens,
        block_tables: &bt,
        max_blocks_per_seq: max_blocks,
        logits_indices: &[],
    };
    step.validate(BLOCK).expect("valid step batch");
    let step = b.prepare_batch(&step).expect("step batch");
    let n = ids.len();
    let cols = c.heads * c.head_dim;
    let qa = upload(b, n, cols, &p.q);
    let mut out = b.new_activations(n, cols).expect("output");
    attend(b, &cache, &step, &p.params(), &qa, &mut out).expect("attention");
    b.to_host(&out, n).expect("to host")
}

/// Checks the bound of the module documentation; returns the largest relative error over
/// outputs of magnitude at least 1e-2 (for the log), or which token rows break the bound.
fn check(
    what: &str,
    p: &Problem,
    got: &[f32],
    (want, mag): &(Vec<f32>, Vec<f32>),
) -> Result<f64, String> {
    assert_eq!(got.len(), want.len(), "{what}: output size");
    let hd = p.case.head_dim;
    let nh = p.case.heads;
    let mut worst = 0f64;
    let mut bad: std::collections::BTreeMap<usize, (usize, String)> = Default::default();
    for (i, ((&g, &w), &a)) in got.iter().zip(want).zip(mag).enumerate() {
        let err = (g - w).abs();
        let (row, h, d) = (i / (nh * hd), i / hd % nh, i % hd);
        if !(g.is_finite() && err <= 1e-2 * w.abs() + 5e-3 * a + 1e-5) {
            let e = bad.entry(row).or_insert_with(|| {
                (
                    0,
                    format!("head {h} dim {d}: got {g}, want {w} (magnitude {a})"),
                )
            });
            e.0 += 1;
        }
        if w.abs() >= 1e-2 {
            worst = worst.max(f64::from(err / w.abs()));
        }
    }
    if bad.is_empty() {
        return Ok(worst);
    }
    // Which sequence (context, queries) each failing row belongs to.
    let mut owner = Vec::new();
    for (s, &(ctx, ql)) in p.case.seqs.iter().enumerate() {
        owner.extend((0..ql).map(|i| (s, ctx, ql, i)));
    }
    let lines: Vec<String> = bad
        .iter()
        .take(12)
        .map(|(row, (n, first))| {
            let (s, ctx, ql, i) = owner[*row];
            format!("row {row} (seq {s}: context {ctx}, {ql} queries, query {i}): {n} values off, first {first}")
        })
        .collect();
    Err(format!(
        "{what}: {} of {} token rows off:\n{}",
        bad.len(),
        got.len() / (nh * hd),
        lines.join("\n")
    ))
}

fn norm_weight(b: &CudaBackend, data: &[f32]) -> ferrum_backend::cuda::CudaWeight {
    let bytes: Vec<u8> = data
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    let t = HostTensor {
        dtype: ferrum_types::DType::BF16,
        shape: vec![data.len()],
        data: std::borrow::Cow::Owned(bytes),
    };
    b.load_weight(&t).expect("norm weight")
}

/// Equal up to one bf16 ulp; returns how many values differ at all.
fn same_bits(what: &str, got: &[f32], want: &[f32]) -> usize {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut differ = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if g != w {
            differ += 1;
            assert!(
                (g - w).abs() <= w.abs() / 128.0 + 1e-6,
                "{what}: element {i}: fused {g}, separate ops {w}"
            );
        }
    }
    differ
}

#[test]
fn fused_prologue_matches_the_separate_ops() {
    let Some(b) = cuda() else { return };
    let mut rng = Lcg(29);
    for (head_dim, heads, kv_heads, with_norm) in [
        (128, 8, 2, true),
        (64, 4, 4, false),
        (256, 4, 1, true),
        (128, 4, 2, false),
    ] {
        let n = 6;
        let spec = KvCacheSpec {
            num_layers: 3,
            num_kv_heads: kv_heads,
            head_dim,
            block_size: BLOCK,
            num_blocks: 8,
        };
        let slots_total = spec.num_blocks * BLOCK;
        let mut slots: Vec<u32> = Vec::new();
        while slots.len() < n {
            let s = rng.below(slots_total) as u32;
            if !slots.contains(&s) {
                slots.push(s);
            }
        }
        let positions: Vec<u32> = (0..n).map(|_| rng.below(500) as u32).collect();
        let zeros = vec![0u32; n];
        let batch = AttentionBatch {
            input_ids: &zeros,
            positions: &positions,
            slot_mapping: &slots,
            query_start_loc: &[0, n as u32],
            seq_lens: &[n as u32],
            block_tables: &[],
            max_blocks_per_seq: 0,
            logits_indices: &[],
        };
        let inv_freq: Vec<f32> = (0..head_dim / 2)
            .map(|i| 1.0 / 1_000_000f32.powf(2.0 * i as f32 / head_dim as f32))
            .collect();
        let rope = b
            .new_rope(&RopeFrequencies::Product { inv_freq }, 512, RopeStyle::Neox)
            .expect("rope");
        let width = kv_heads * head_dim;
        let mut vals = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.next() * 3.0).collect() };
        let (qd, kd, vd) = (vals(n * heads * head_dim), vals(n * width), vals(n * width));
        let qn: Vec<f32> = (0..head_dim).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
        let kn: Vec<f32> = (0..head_dim).map(|i| 1.5 - (i % 5) as f32 * 0.25).collect();
        let (qw, kw) = (norm_weight(&b, &qn), norm_weight(&b, &kn));
        let eps = 1e-6;
        let norm = with_norm.then_some((&qw, &kw, eps));

        let step = b.prepare_batch(&batch).expect("batch");
        let mut q1 = upload(&b, n, heads * head_dim, &qd);
        let mut k1 = upload(&b, n, width, &kd);
        let v1 = upload(&b, n, width, &vd);
        let mut c1 = b.new_kv_cache(&spec).expect("cache");
        b.qk_rope_write_kv(
            &rope, &step, &mut q1, &mut k1, &v1, norm, head_dim, n, &mut c1, 1,
        )
        .expect("fused");

        let step = b.prepare_batch(&batch).expect("batch");
        let mut q2 = upload(&b, n, heads * head_dim, &qd);
        let mut k2 = upload(&b, n, width, &kd);
        let v2 = upload(&b, n, width, &vd);
        let mut c2 = b.new_kv_cache(&spec).expect("cache");
        if with_norm {
            b.head_rms_norm(&mut q2, &qw, eps, head_dim, n)
                .expect("q norm");
            b.head_rms_norm(&mut k2, &kw, eps, head_dim, n)
                .expect("k norm");
        }
        b.rotary(&rope, &step, &mut q2, &mut k2, head_dim)
            .expect("rotary");
        b.write_kv(&mut c2, 1, &step, &k2, &v2).expect("write_kv");

        let what = format!("head_dim {head_dim}, {heads}/{kv_heads} heads, norm {with_norm}");
        let mut differ = same_bits(
            &format!("{what}: q"),
            &b.to_host(&q1, n).expect("q"),
            &b.to_host(&q2, n).expect("q"),
        );
        let (fk, fv) = b.kv_cache_to_host(&c1, 1).expect("cache");
        let (sk, sv) = b.kv_cache_to_host(&c2, 1).expect("cache");
        differ += same_bits(&format!("{what}: cached keys"), &fk, &sk);
        differ += same_bits(&format!("{what}: cached values"), &fv, &sv);
        assert!(sk.iter().any(|&x| x != 0.0), "{what}: keys were written");
        for layer in [0, 2] {
            let (k, v) = b.kv_cache_to_host(&c1, layer).expect("cache");
            assert!(
                k.iter().chain(&v).all(|&x| x == 0.0),
                "{what}: layer {layer} untouched"
            );
        }
        eprintln!("{what}: {differ} values differ by one ulp, the rest are equal");
    }
}

#[test]
fn tiled_kernels_match_naive_attention() {
    let Some(b) = cuda() else { return };
    let mixed = vec![
        (3000, 1),   // decode at a long context: several chunks merged
        (1, 1),      // decode of a one-token prompt
        (777, 1),    // decode
        (300, 300),  // a whole prompt
        (1500, 200), // a prefill chunk after earlier context
        (2999, 77),  // a last chunk of a long prompt
        (129, 64),   // exactly one item of queries
        (65, 2),     // the smallest prefill
    ];
    let cases = [
        // Llama-3-8B heads (GQA 4) at head size 128.
        (32, 8, 128, mixed.clone()),
        // GQA 8 and 1 at head size 64.
        (16, 2, 64, mixed.clone()),
        (4, 4, 64, vec![(3000, 1), (700, 130), (5, 5), (64, 1)]),
        // A group of 12: decode blocks take 6 heads, prefill blocks all 12.
        (24, 2, 32, vec![(2100, 1), (400, 150), (33, 3)]),
        // Small and large heads.
        (4, 1, 16, vec![(1200, 1), (300, 45), (2, 2), (2500, 1)]),
        (12, 2, 96, vec![(900, 1), (200, 100)]),
        (8, 2, 256, vec![(2000, 1), (500, 70), (40, 40)]),
        // All decode, many contexts: the split-and-merge path with chunks of every length.
        (
            32,
            8,
            128,
            (0..40).map(|i| (1 + (i * 997) % 3000, 1)).collect(),
        ),
    ];
    let mut failures = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        let (p, what) = numbered_problem(i, 100 + i as u64, case);
        let want = p.reference();
        let tiled = run_on_device(&b, &p, |b, c, s, pa, q, o| b.attention(c, 0, s, pa, q, o));
        let e_new = check(&format!("{what}, tiled"), &p, &tiled, &want);
        // Split contexts count finished chunks in device memory that each launch must leave
        // zero: a second launch gives the same bits only if it did.
        let again = run_on_device(&b, &p, |b, c, s, pa, q, o| b.attention(c, 0, s, pa, q, o));
        if again
            .iter()
            .map(|x| x.to_bits())
            .ne(tiled.iter().map(|x| x.to_bits()))
        {
            failures.push(format!(
                "{what}: a second tiled launch differs from the first"
            ));
        }
        let reference = run_on_device(&b, &p, |b, c, s, pa, q, o| {
            b.attention_reference(c, 0, s, pa, q, o)
        });
        let e_ref = check(&format!("{what}, reference kernel"), &p, &reference, &want);
        let show = |e: &Result<f64, String>| {
            e.as_ref()
                .map_or("FAIL".to_string(), |x| format!("{x:.2e}"))
        };
        eprintln!(
            "{what}: max relative error tiled {}, reference kernel {}",
            show(&e_new),
            show(&e_ref)
        );
        for e in [&e_new, &e_ref] {
            if let Err(m) = e {
                eprintln!("{m}");
            }
        }
        failures.extend(e_new.err());
        failures.extend(e_ref.err());
    }
    assert!(
        failures.is_empty(),
        "{} checks failed (see above)",
        failures.len()
    );
}

#[test]
fn one_head_decode_equals_grouped_decode() {
    let Some(b) = cuda() else { return };
    let short: Vec<(usize, usize)> = [1, 17, 300, 777, 1024].iter().map(|&c| (c, 1)).collect();
    let cases = [
        // Qwen3-4B and Llama-3-8B heads (GQA 4) at head size 128; GQA 8 at 64.
        (32, 8, 128, short.clone()),
        (16, 2, 64, short.clone()),
        // One query head per KV head: the one-head kernel at every context, split ones too.
        (4, 4, 64, vec![(3000, 1), (1, 1), (1500, 1)]),
        (
            8,
            8,
            128,
            (0..12).map(|i| (1 + (i * 613) % 2500, 1)).collect(),
        ),
        // Head sizes 96 and 256.
        (12, 2, 96, vec![(900, 1), (40, 1)]),
        (8, 2, 256, vec![(1000, 1), (5, 1)]),
    ];
    let mut failures = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        let (p, what) = numbered_problem(i, 200 + i as u64, case);
        let one_head = run_on_device(&b, &p, |b, c, s, pa, q, o| b.attention(c, 0, s, pa, q, o));
        let grouped = run_on_device(&b, &p, |b, c, s, pa, q, o| {
            b.attention_decode_grouped(c, 0, s, pa, q, o)
        });
        let differ = one_head
            .iter()
            .zip(&grouped)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        eprintln!("{what}: {differ} of {} outputs differ", one_head.len());
        if differ > 0 {
            failures.push(what.clone());
        }
        // And both are right (a shared mistake would pass the comparison above).
        failures.extend(check(&what, &p, &one_head, &p.reference()).err());
    }
    assert!(failures.is_empty(), "failed: {failures:?}");
}

/// Median seconds of `f` over `reps` runs after two warm-up runs, each timed from a drained
/// stream to a drained stream.
fn median_time(b: &CudaBackend, reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..2 {
        f();
    }
    b.synchronize().expect("sync");
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            b.synchronize().expect("sync");
            let start = Instant::now();
            f();
            b.synchronize().expect("sync");
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

#[test]
#[ignore = "timing on a GPU: cargo test -p ferrum-backend --test cuda_attention -- --ignored --nocapture"]
fn attention_timing_llama3_8b() {
    let Some(b) = cuda() else { return };
    let (heads, kv_heads, head_dim) = (32usize, 8usize, 128usize);
    // (name, sequences, context per sequence, queries per sequence)
    let scenarios = [
        ("prefill 8 × 1024", 8usize, 1024usize, 1024usize),
        ("decode 256 × ctx 1024", 256, 1024, 1),
        ("decode 32 × ctx 8192", 32, 8192, 1),
        ("decode 1 × ctx 32768", 1, 32768, 1),
        ("decode 4 × ctx 300", 4, 300, 1),
    ];
    eprintln!(
        "Llama-3-8B attention (32 heads, 8 kv heads, head_dim 128, block {BLOCK}), one layer:"
    );
    for (name, seqs, ctx, ql) in scenarios {
        let per = ctx.div_ceil(BLOCK);
        let spec = KvCacheSpec {
            num_layers: 1,
            num_kv_heads: kv_heads,
            head_dim,
            block_size: BLOCK,
            num_blocks: seqs * per,
        };
        // Values do not change the work: the cache and queries stay zero.
        let cache = b.new_kv_cache(&spec).expect("cache");
        let n = seqs * ql;
        let ids = vec![0u32; n];
        let positions: Vec<u32> = (0..n).map(|i| (ctx - ql + i % ql) as u32).collect();
        let slots: Vec<u32> = (0..n)
            .map(|i| ((i / ql) * per * BLOCK + ctx - ql + i % ql) as u32)
            .collect();
        let qsl: Vec<u32> = (0..=seqs).map(|s| (s * ql) as u32).collect();
        let seq_lens = vec![ctx as u32; seqs];
        let bt: Vec<u32> = (0..(seqs * per) as u32).collect();
        let batch = AttentionBatch {
            input_ids: &ids,
            positions: &positions,
            slot_mapping: &slots,
            query_start_loc: &qsl,
            seq_lens: &seq_lens,
            block_tables: &bt,
            max_blocks_per_seq: per,
            logits_indices: &[],
        };
        batch.validate(BLOCK).expect("valid batch");
        let batch = b.prepare_batch(&batch).expect("batch");
        let q = b.new_activations(n, heads * head_dim).expect("q");
        let mut out = b.new_activations(n, heads * head_dim).expect("out");
        let params = AttentionParams {
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
        };
        let new = median_time(&b, 20, || {
            b.attention(&cache, 0, &batch, &params, &q, &mut out)
                .expect("attention");
        });
        let old = median_time(&b, 5, || {
            b.attention_reference(&cache, 0, &batch, &params, &q, &mut out)
                .expect("reference attention");
        });
        eprintln!(
            "  {name:<24} tiled {:>9.3} ms   reference (one block per token·head) {:>9.3} ms   ×{:.1}",
            new * 1e3,
            old * 1e3,
            old / new
        );
    }
}
