//! Paged KV storage and causal attention over it.
//!
//! Invariant: a sequence's context token `j` lives in block `block_table[j / block_size]` at
//! offset `j % block_size`; queries of this step are the last `query_len` tokens of the context,
//! so query `i` sees context tokens `0..=seq_len - query_len + i`.

use rayon::prelude::*;

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

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent lanes let the compiler vectorize the reduction.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Where each token row's sequence starts and how much context it sees.
struct TokenView {
    seq: usize,
    visible: usize,
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

pub fn paged_attention(
    cache: &CpuKvCache,
    layer: usize,
    batch: &CpuBatch,
    p: &AttentionParams,
    q: &[f32],
    out: &mut [f32],
) -> Result<()> {
    let s = cache.spec;
    if layer >= s.num_layers
        || p.head_dim != s.head_dim
        || p.num_kv_heads != s.num_kv_heads
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
    let (kc, vc) = (&cache.k[layer], &cache.v[layer]);
    out.par_chunks_mut(hd).enumerate().for_each(|(idx, o)| {
        let (t, h) = (idx / nh, idx % nh);
        let view = &views[t];
        let g = h / group;
        let qv = &q[t * nh * hd + h * hd..t * nh * hd + (h + 1) * hd];
        let table = &batch.block_tables[view.seq * batch.max_blocks_per_seq..];
        let kv_at = |j: usize| {
            let slot = table[j / s.block_size] as usize * s.block_size + j % s.block_size;
            cache.offset(slot, g)
        };
        let mut scores: Vec<f32> = (0..view.visible)
            .map(|j| {
                let off = kv_at(j);
                dot(qv, &kc[off..off + hd]) * p.scale
            })
            .collect();
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f64;
        for x in scores.iter_mut() {
            *x = (*x - max).exp();
            sum += f64::from(*x);
        }
        let inv = (1.0 / sum) as f32;
        o.fill(0.0);
        for (j, &w) in scores.iter().enumerate() {
            let off = kv_at(j);
            let w = w * inv;
            for (a, &b) in o.iter_mut().zip(&vc[off..off + hd]) {
                *a += w * b;
            }
        }
    });
    Ok(())
}
