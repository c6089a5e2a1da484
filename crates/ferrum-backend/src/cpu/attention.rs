//! Paged KV storage and causal attention over it.
//!
//! Invariants:
//! - A sequence's context token `j` lives in block `block_table[j / block_size]` at offset
//!   `j % block_size`; queries of this step are the last `query_len` tokens of the context, so
//!   query `i` sees context tokens `0..=seq_len - query_len + i`.
//! - A query head's output is computed by the same sequence of operations whatever else is in
//!   the batch, in one of the orders of `attention_sums` (register-resident, or llama.cpp's).
//!   The default order also does not depend on how a prompt was split into steps.

use std::cell::RefCell;

use super::attention_sums::{fold_rows, Fast, LlamaCpp, SumOrder};
use super::pool::{par_chunks_mut, Parallel};
use super::CpuBatch;
use crate::{AttentionParams, BackendError, KvCacheSpec, Result};

/// K and V for every layer, `[num_blocks, num_kv_heads, block_size, head_dim]` each.
#[derive(Debug)]
pub struct CpuKvCache {
    spec: KvCacheSpec,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl CpuKvCache {
    pub fn new(spec: &KvCacheSpec) -> Result<Self> {
        let per_layer = spec
            .num_blocks
            .checked_mul(spec.num_kv_heads)
            .and_then(|n| n.checked_mul(spec.block_size))
            .and_then(|n| n.checked_mul(spec.head_dim))
            .ok_or_else(|| BackendError::OutOfMemory(format!("KV cache {spec:?}")))?;
        let mut k = Vec::with_capacity(spec.num_layers);
        let mut v = Vec::with_capacity(spec.num_layers);
        for _ in 0..spec.num_layers {
            k.push(vec![0.0; per_layer]);
            v.push(vec![0.0; per_layer]);
        }
        Ok(Self { spec: *spec, k, v })
    }

    pub fn spec(&self) -> &KvCacheSpec {
        &self.spec
    }

    #[inline]
    fn offset(&self, slot: usize, head: usize) -> usize {
        let s = &self.spec;
        let (block, off) = (slot / s.block_size, slot % s.block_size);
        ((block * s.num_kv_heads + head) * s.block_size + off) * s.head_dim
    }

    /// Stores rows of `[num_kv_heads × head_dim]` keys and values at their slots.
    pub fn write(&mut self, layer: usize, slots: &[u32], k: &[f32], v: &[f32]) -> Result<()> {
        let s = self.spec;
        let width = s.num_kv_heads * s.head_dim;
        let total_slots = s.num_blocks * s.block_size;
        if layer >= s.num_layers || k.len() != slots.len() * width || v.len() != k.len() {
            return Err(BackendError::Shape {
                what: "write_kv".into(),
                expected: format!("layer < {} and {} values per token", s.num_layers, width),
                got: format!(
                    "layer {layer}, {} values for {} tokens",
                    k.len(),
                    slots.len()
                ),
            });
        }
        for (t, &slot) in slots.iter().enumerate() {
            let slot = slot as usize;
            if slot >= total_slots {
                return Err(BackendError::Batch(format!(
                    "slot {slot} outside the cache of {total_slots} slots"
                )));
            }
            for h in 0..s.num_kv_heads {
                let dst = self.offset(slot, h);
                let src = t * width + h * s.head_dim;
                self.k[layer][dst..dst + s.head_dim].copy_from_slice(&k[src..src + s.head_dim]);
                self.v[layer][dst..dst + s.head_dim].copy_from_slice(&v[src..src + s.head_dim]);
            }
        }
        Ok(())
    }
}

/// Which order attention sums in (see `attention_sums`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionOrder {
    #[default]
    Fast,
    LlamaCpp,
}

/// Where each token row's sequence starts, how much context it sees, and whether other
/// tokens of its sequence are in the step.
struct TokenView {
    seq: usize,
    visible: usize,
    multi: bool,
}

fn token_views(batch: &CpuBatch, total_slots: usize, block_size: usize) -> Result<Vec<TokenView>> {
    let mut views = Vec::with_capacity(batch.num_tokens());
    for s in 0..batch.seq_lens.len() {
        let (a, b) = (
            batch.query_start_loc[s] as usize,
            batch.query_start_loc[s + 1] as usize,
        );
        let seq_len = batch.seq_lens[s] as usize;
        let q_len = b.checked_sub(a).filter(|&q| q <= seq_len).ok_or_else(|| {
            BackendError::Batch(format!("sequence {s}: bad query range {a}..{b}"))
        })?;
        let blocks = seq_len.div_ceil(block_size);
        let table = batch
            .block_tables
            .get(s * batch.max_blocks_per_seq..s * batch.max_blocks_per_seq + blocks)
            .ok_or_else(|| BackendError::Batch(format!("sequence {s}: block table too short")))?;
        if table
            .iter()
            .any(|&blk| (blk as usize + 1) * block_size > total_slots)
        {
            return Err(BackendError::Batch(format!(
                "sequence {s}: block id out of range"
            )));
        }
        for i in 0..q_len {
            views.push(TokenView {
                seq: s,
                visible: seq_len - q_len + i + 1,
                multi: q_len > 1,
            });
        }
    }
    if views.len() != batch.num_tokens() {
        return Err(BackendError::Batch(
            "query ranges do not cover the batch".into(),
        ));
    }
    Ok(views)
}

/// Causal attention of every query row of `batch` over its sequence's cached keys and values.
///
/// Tasks are (token, KV head) pairs covering the query heads that share that KV head, so each
/// cached key and value row is read once per token and group; with fewer pairs than would keep
/// the threads busy, tasks are single query heads instead. A head's arithmetic is the same
/// either way, so results do not depend on the batch.
#[allow(clippy::too_many_arguments)] // the op's operands, as the backend trait passes them
pub fn paged_attention(
    par: &dyn Parallel,
    cache: &CpuKvCache,
    layer: usize,
    batch: &CpuBatch,
    p: &AttentionParams,
    order: AttentionOrder,
    q: &[f32],
    out: &mut [f32],
) -> Result<()> {
    let s = cache.spec;
    if layer >= s.num_layers
        || p.head_dim != s.head_dim
        || p.num_kv_heads != s.num_kv_heads
        || p.num_kv_heads == 0
        || !p.num_heads.is_multiple_of(p.num_kv_heads)
    {
        return Err(BackendError::Shape {
            what: "attention".into(),
            expected: format!("{:?}", s),
            got: format!("layer {layer}, {p:?}"),
        });
    }
    let views = token_views(batch, s.num_blocks * s.block_size, s.block_size)?;
    let (hd, nh) = (p.head_dim, p.num_heads);
    let group = nh / p.num_kv_heads;
    let per_task = if views.len() * p.num_kv_heads >= 2 * par.threads() {
        group
    } else {
        1
    };
    let tasks_per_token = nh / per_task;
    let ctx = Context {
        k: &cache.k[layer],
        v: &cache.v[layer],
        spec: &s,
        scale: p.scale,
    };
    par_chunks_mut(par, out, per_task * hd, |i, o| {
        let (t, h0) = (i / tasks_per_token, (i % tasks_per_token) * per_task);
        let view = &views[t];
        let table = &batch.block_tables[view.seq * batch.max_blocks_per_seq..];
        let qs = &q[(t * nh + h0) * hd..(t * nh + h0 + per_task) * hd];
        let task = Task {
            table,
            visible: view.visible,
            g: h0 / group,
            multi: view.multi,
        };
        let mut attend = |scratch: &mut Scratch| match order {
            AttentionOrder::Fast => ctx.attend::<Fast>(&task, qs, scratch, o),
            AttentionOrder::LlamaCpp => ctx.attend::<LlamaCpp>(&task, qs, scratch, o),
        };
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => attend(&mut scratch),
            Err(_) => attend(&mut Scratch::default()),
        })
    });
    Ok(())
}

/// Per-thread buffers of the task at hand; they keep their allocations across tasks and steps.
#[derive(Default)]
struct Scratch {
    /// `heads × visible` attention scores, then weights.
    scores: Vec<f32>,
    /// `64 × head_dim` value accumulators (context position mod 64) of the llama.cpp order.
    acc: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One (token, KV head) task: the sequence's block table, the context it sees, and whether
/// the step has other tokens of the sequence.
struct Task<'a> {
    table: &'a [u32],
    visible: usize,
    g: usize,
    multi: bool,
}

/// One layer's cache, borrowed for a call.
struct Context<'a> {
    k: &'a [f32],
    v: &'a [f32],
    spec: &'a KvCacheSpec,
    scale: f32,
}

impl Context<'_> {
    /// `o` (heads × head_dim) = softmax(q·Kᵀ·scale)·V for the query heads `qs` that share KV
    /// head `task.g`, over the first `task.visible` context tokens of its sequence.
    fn attend<O: SumOrder>(
        &self,
        task: &Task<'_>,
        qs: &[f32],
        scratch: &mut Scratch,
        o: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected.
            return unsafe { self.attend_avx2::<O>(task, qs, scratch, o) };
        }
        self.attend_generic::<O>(task, qs, scratch, o)
    }

    /// The same code with 256-bit vectors and FMA instructions (the same operations, so the
    /// same results: without FMA hardware `mul_add` is a correctly rounded library call).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn attend_avx2<O: SumOrder>(
        &self,
        task: &Task<'_>,
        qs: &[f32],
        scratch: &mut Scratch,
        o: &mut [f32],
    ) {
        self.attend_generic::<O>(task, qs, scratch, o)
    }

    /// Calls `f(j, row_j)` for the first `visible` context positions `j` of KV head `g` in
    /// `data` (this layer's keys or values, rows of `hd`), in context order. With `fetch_next`,
    /// the next block's rows are fetched meanwhile (blocks are scattered, so the hardware
    /// prefetcher cannot).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn for_each_row(
        &self,
        data: &[f32],
        hd: usize,
        blocks: &[u32],
        visible: usize,
        g: usize,
        fetch_next: bool,
        mut f: impl FnMut(usize, &[f32]),
    ) {
        let bs = self.spec.block_size;
        for (b, &blk) in blocks.iter().enumerate() {
            let base = self.block_base(blk, g);
            let next = blocks.get(b + 1).map(|&n| self.block_base(n, g));
            for i in 0..bs.min(visible - b * bs) {
                if let (true, Some(n)) = (fetch_next, next) {
                    prefetch(&data[n + i * hd..n + (i + 1) * hd]);
                }
                f(b * bs + i, &data[base + i * hd..base + (i + 1) * hd]);
            }
        }
    }

    /// Offset of the first row of KV head `g` in cache block `blk`.
    #[inline(always)]
    fn block_base(&self, blk: u32, g: usize) -> usize {
        ((blk as usize * self.spec.num_kv_heads + g) * self.spec.block_size) * self.spec.head_dim
    }

    #[inline(always)]
    fn attend_generic<O: SumOrder>(
        &self,
        task: &Task<'_>,
        qs: &[f32],
        scratch: &mut Scratch,
        o: &mut [f32],
    ) {
        let (visible, g) = (task.visible, task.g);
        let table = task.table;
        let (bs, hd) = (self.spec.block_size, self.spec.head_dim);
        let heads = qs.len() / hd;
        let blocks = &table[..visible.div_ceil(bs)];
        let Scratch { scores, acc } = scratch;
        scores.clear();
        scores.resize(heads * visible, 0.0);
        // 1. Scores, each key row read once for all heads of the group.
        self.for_each_row(self.k, hd, blocks, visible, g, true, |j, k| {
            for (h, q) in qs.chunks_exact(hd).enumerate() {
                scores[h * visible + j] = O::dot(q, k) * self.scale;
            }
        });
        // 2. Softmax per head (chunk sums in f64: long contexts lose nothing to rounding),
        //    the normalization folded into the weights.
        for sc in scores.chunks_exact_mut(visible.max(1)) {
            let max = sc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum = O::exp_sum(sc, max);
            let inv = (1.0 / sum) as f32;
            for x in sc.iter_mut() {
                *x *= inv;
            }
        }
        // 3. Weighted values (the common head sizes spelled out so that they are unrolled).
        if O::VEC_DOT_VALUES {
            if acc.len() < 64 * hd {
                acc.resize(64 * hd, 0.0);
            }
            let lanes = if task.multi { 16 } else { 64 };
            let w = (&scores[..], &mut acc[..]);
            match hd {
                64 => self.weighted_values_vec_dot(64, lanes, blocks, visible, g, w, o),
                128 => self.weighted_values_vec_dot(128, lanes, blocks, visible, g, w, o),
                _ => self.weighted_values_vec_dot(hd, lanes, blocks, visible, g, w, o),
            }
        } else {
            match hd {
                64 => self.weighted_values::<64>(blocks, visible, g, scores, o),
                128 => self.weighted_values::<128>(blocks, visible, g, scores, o),
                _ => self.weighted_values_any(blocks, visible, g, scores, o),
            }
        }
    }

    /// `o_h = Σ_j w_hj · v_j` in llama.cpp's orders: accumulator `j mod lanes` takes position
    /// `j` (64 lanes: its `vec_dot`; 16: its matrix multiply), then [`fold_rows`]. Only the
    /// first `min(visible, lanes)` accumulators are ever non-zero, so only those are cleared and
    /// folded (adding a zero row changes no bit). `w_acc` is (weights, accumulator rows).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn weighted_values_vec_dot(
        &self,
        hd: usize,
        lanes: usize,
        blocks: &[u32],
        visible: usize,
        g: usize,
        w_acc: (&[f32], &mut [f32]),
        o: &mut [f32],
    ) {
        let (w, acc) = w_acc;
        let rows = visible.min(lanes);
        for (h, o) in o.chunks_exact_mut(hd).enumerate() {
            let w = &w[h * visible..(h + 1) * visible];
            acc[..rows * hd].fill(0.0);
            self.for_each_row(self.v, hd, blocks, visible, g, h == 0, |j, v| {
                let wj = w[j];
                let lane = &mut acc[(j % lanes) * hd..(j % lanes + 1) * hd];
                for (a, &x) in lane.iter_mut().zip(v) {
                    *a = wj.mul_add(x, *a);
                }
            });
            fold_rows(acc, hd, rows, lanes);
            o.copy_from_slice(&acc[..hd]);
        }
    }

    /// `o_h = Σ_j w_hj · v_j` with the sums kept in registers (`HD` = head_dim).
    #[inline(always)]
    fn weighted_values<const HD: usize>(
        &self,
        blocks: &[u32],
        visible: usize,
        g: usize,
        w: &[f32],
        o: &mut [f32],
    ) {
        for (h, o) in o.chunks_exact_mut(HD).enumerate() {
            let w = &w[h * visible..(h + 1) * visible];
            let mut acc = [0.0f32; HD];
            self.for_each_row(self.v, HD, blocks, visible, g, h == 0, |j, v| {
                let wj = w[j];
                for (a, &x) in acc.iter_mut().zip(v) {
                    *a += wj * x;
                }
            });
            o.copy_from_slice(&acc);
        }
    }

    /// As [`Self::weighted_values`] for any head_dim (the sums live in `o`).
    #[inline(always)]
    fn weighted_values_any(
        &self,
        blocks: &[u32],
        visible: usize,
        g: usize,
        w: &[f32],
        o: &mut [f32],
    ) {
        let hd = self.spec.head_dim;
        o.fill(0.0);
        for (h, o) in o.chunks_exact_mut(hd).enumerate() {
            let w = &w[h * visible..(h + 1) * visible];
            self.for_each_row(self.v, hd, blocks, visible, g, false, |j, v| {
                let wj = w[j];
                for (a, &x) in o.iter_mut().zip(v) {
                    *a += wj * x;
                }
            });
        }
    }
}

/// Asks for the cache lines of `row` ahead of use (a hint: no effect on results).
#[inline(always)]
fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in row.chunks(16) {
        // SAFETY: prefetching is a hint that never faults; the address is inside `row`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast::<i8>(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}
