//! Host side of paged attention: work lists, checks and launches of the kernels in
//! `kernels/attention.cu` (prefill) and `kernels/attention_decode.cu`.
//!
//! Invariants:
//! - Every token of a batch is covered exactly once: tokens of sequences with several queries
//!   in the step by the prefill kernel (items of [`PREFILL_ITEM_TOKENS`] queries), tokens of
//!   sequences with one query by the decode kernel.
//! - Before any launch the host has checked that every block id is inside the cache, that no
//!   sequence has more queries than context, and that each context fits its block-table row,
//!   so the kernels never read outside the cache, the table or the activations.
//! - A block of either kernel only serves query heads that share one KV head (`hg` divides the
//!   group size), so it reads each key and value once for all of them.

use cudarc::driver::{CudaFunction, LaunchConfig};

use super::kernels::{AttentionKernels, ATTENTION_HEAD_DIMS, PREFILL_ITEM_TOKENS};
use super::{
    as_u32, grid, launch_err, CudaActivations, CudaBackend, CudaBatch, CudaDType, CudaError,
    CudaKvCache,
};
use crate::{AttentionParams, BackendError, Result};

/// Threads of a prefill block: the tensor-core kernel (16-bit types, head sizes up to 128,
/// `TC_WARPS` warps) and the CUDA-core one (head size 256, or f32, `PF_THREADS`).
const PREFILL_TC_THREADS: u32 = 128;
const PREFILL_CORE_THREADS: u32 = 256;
/// Threads of a decode block (`DC_WARPS` warps).
const DECODE_THREADS: u32 = 128;
/// Query heads one decode block serves at most (`DC_MAX_HG`).
const DECODE_MAX_HEADS: usize = 8;
/// Decode grids aim for about this many blocks (a few waves on 100+ SMs) before splitting a
/// context further adds merge work for nothing.
const DECODE_TARGET_BLOCKS: usize = 2048;
/// Decode steps of at most this many tokens launch one query head per block...
const DECODE_SPREAD_TOKENS: usize = 8;
/// ...except for tokens with a longer context than this, whose heads the kernel regroups.
const DECODE_SHORT_CTX: u32 = 1024;
/// The shortest chunk worth its own block: one round of the block's 4 × 32 lanes (a short
/// context of a small batch is latency-bound: more blocks, not longer ones).
const DECODE_MIN_CHUNK: usize = 128;

/// The attention work lists of one batch, derived on the host. The backend keeps one and
/// refills it every step, so its vectors are allocated once.
#[derive(Default)]
pub(crate) struct AttentionWork {
    /// `(seq, first query)` pairs, flattened, the items with the most keys first.
    pub prefill_items: Vec<u32>,
    pub decode_tokens: Vec<u32>,
    pub max_decode_ctx: usize,
    pub queries_exceed_context: bool,
    /// `(keys before the item's first query, seq, first query)`, to sort the items.
    items: Vec<(u32, u32, u32)>,
}

impl AttentionWork {
    #[cfg(test)]
    pub fn new(query_start_loc: &[u32], seq_lens: &[u32]) -> Self {
        let mut w = Self::default();
        w.fill(query_start_loc, seq_lens);
        w
    }

    /// Replaces the lists with those of the batch `query_start_loc`, `seq_lens`.
    pub fn fill(&mut self, query_start_loc: &[u32], seq_lens: &[u32]) {
        self.prefill_items.clear();
        self.decode_tokens.clear();
        self.items.clear();
        self.max_decode_ctx = 0;
        self.queries_exceed_context = false;
        for (s, (q, &ctx)) in query_start_loc.windows(2).zip(seq_lens).enumerate() {
            let q_len = q[1].saturating_sub(q[0]);
            if q_len > ctx {
                self.queries_exceed_context = true;
            }
            if q_len == 1 {
                self.decode_tokens.push(q[0]);
                self.max_decode_ctx = self.max_decode_ctx.max(ctx as usize);
            } else {
                for off in (0..q_len).step_by(PREFILL_ITEM_TOKENS as usize) {
                    self.items
                        .push((ctx.saturating_sub(q_len) + off, s as u32, off));
                }
            }
        }
        // Longest causal context first: the blocks with the most keys start in the first
        // wave instead of running alone at the end. (Unstable sort: the keys are distinct,
        // and it needs no buffer.)
        self.items
            .sort_unstable_by_key(|&(keys, s, off)| (std::cmp::Reverse(keys), s, off));
        self.prefill_items
            .extend(self.items.iter().flat_map(|&(_, s, off)| [s, off]));
    }
}

/// Device addresses and scalars every attention launch shares.
pub(super) struct AttentionArgs<'k> {
    f: &'k AttentionKernels,
    kc: u64,
    vc: u64,
    out: u64,
    q: u64,
    block_tables: u64,
    seq_lens: u64,
    query_start_loc: u64,
    token_seq: u64,
    max_blocks: u32,
    block_size: u32,
    num_heads: u32,
    num_kv_heads: u32,
    /// Query heads per KV head.
    group: usize,
}

/// The largest divisor of `n` that is at most `cap` (1 when `n` is 0).
fn largest_divisor_at_most(n: usize, cap: usize) -> usize {
    (1..=cap.min(n).max(1))
        .rev()
        .find(|d| n.is_multiple_of(*d))
        .unwrap_or(1)
}

/// `(chunk, nchunks)` for `items` (token, head group) pairs whose longest context is `ctx`.
///
/// Chunks are never shorter than `DECODE_MIN_CHUNK`, so while `ctx ≤ want · DECODE_MIN_CHUNK`
/// the chunk is exactly that long whatever `ctx` is: a step run op by op and the same step
/// replayed from a recording made for a wider table then cut every context at the same keys,
/// and (a single chunk's merge being exact) give the same bits.
fn decode_split(items: usize, ctx: usize) -> (usize, usize) {
    let want = DECODE_TARGET_BLOCKS.div_ceil(items.max(1));
    let most = ctx.div_ceil(DECODE_MIN_CHUNK).max(1);
    let n = want.clamp(1, most);
    // Whole warps of keys per chunk; rounding up may leave fewer chunks than `n`.
    let chunk = ctx.div_ceil(n).next_multiple_of(32).max(DECODE_MIN_CHUNK);
    (chunk, ctx.div_ceil(chunk).max(1))
}

impl CudaBackend {
    /// Checks shapes and metadata bounds on the host and gathers the launch arguments.
    pub(super) fn attention_args(
        &self,
        cache: &CudaKvCache,
        layer: usize,
        batch: &CudaBatch,
        params: &AttentionParams,
        q: &CudaActivations,
        out: &CudaActivations,
    ) -> Result<AttentionArgs<'_>> {
        self.live(batch)?;
        let n = batch.num_tokens;
        let spec = cache.spec;
        let hd = params.head_dim;
        if params.num_kv_heads == 0
            || !params.num_heads.is_multiple_of(params.num_kv_heads)
            || params.num_kv_heads != spec.num_kv_heads
            || hd != spec.head_dim
            || q.cols != params.num_heads * hd
            || out.cols != q.cols
        {
            return Err(BackendError::Shape {
                what: "attention".into(),
                expected: format!(
                    "{} kv heads of {} dims, q width = heads × head_dim",
                    spec.num_kv_heads, spec.head_dim
                ),
                got: format!("{params:?}, q width {}", q.cols),
            });
        }
        let f = self.k.attention_for(hd).ok_or_else(|| {
            CudaError::Unsupported(format!(
                "head_dim {hd} (attention kernels exist for {ATTENTION_HEAD_DIMS:?})"
            ))
        })?;
        q.check_rows(n, "attention q")?;
        out.check_rows(n, "attention output")?;
        if let Some(b) = batch.max_block {
            if b as usize >= spec.num_blocks {
                return Err(BackendError::Batch(format!(
                    "block {b} beyond the KV cache of {} blocks",
                    spec.num_blocks
                )));
            }
        }
        if batch.queries_exceed_context {
            return Err(BackendError::Batch(
                "a sequence has more queries in the step than context (seq_lens)".into(),
            ));
        }
        if let Some(l) = batch.max_seq_len {
            let covered = batch.max_blocks_per_seq.saturating_mul(spec.block_size);
            if n > 0 && l as usize > covered {
                return Err(BackendError::Batch(format!(
                    "context of {l} tokens beyond the block table of {} blocks of {}",
                    batch.max_blocks_per_seq, spec.block_size
                )));
            }
        }
        let (kc, vc) = cache.layer_addrs(layer, &self.stream)?;
        let st = &self.stream;
        Ok(AttentionArgs {
            f,
            kc,
            vc,
            out: self.a(&out.data),
            q: self.a(&q.data),
            block_tables: batch.at(batch.off.block_tables, st),
            seq_lens: batch.at(batch.off.seq_lens, st),
            query_start_loc: batch.at(batch.off.query_start_loc, st),
            token_seq: batch.at(batch.off.token_seq, st),
            max_blocks: as_u32(batch.max_blocks_per_seq, "max blocks")?,
            block_size: as_u32(spec.block_size, "block size")?,
            num_heads: as_u32(params.num_heads, "heads")?,
            num_kv_heads: as_u32(params.num_kv_heads, "kv heads")?,
            group: params.num_heads / params.num_kv_heads,
        })
    }

    /// The batch's prefill items and decode tokens through their tiled kernels; the whole
    /// batch through the reference kernel where the module has no tiled prefill instance for
    /// this head size (f32 at 256).
    pub(super) fn tiled_attention(
        &self,
        batch: &CudaBatch,
        params: &AttentionParams,
        a: &AttentionArgs<'_>,
    ) -> Result<()> {
        if batch.num_prefill_items > 0 {
            let Some(f) = &a.f.prefill else {
                return self.reference_attention(batch, params, a);
            };
            self.prefill_attention(f, batch, params, a)?;
        }
        if batch.num_decode_tokens > 0 {
            self.decode_attention(batch, params, a, true)?;
        }
        Ok(())
    }

    /// Tokens of sequences with several queries: tiled causal attention (`f`), one block per
    /// (query tile of one sequence, group of query heads of one KV head).
    fn prefill_attention(
        &self,
        f: &CudaFunction,
        batch: &CudaBatch,
        params: &AttentionParams,
        a: &AttentionArgs<'_>,
    ) -> Result<()> {
        // Rows (query × head) of a block and its threads: see attention.cu.
        let (rows, threads) = if params.head_dim > 128 || self.dtype == CudaDType::F32 {
            (32, PREFILL_CORE_THREADS)
        } else {
            (64, PREFILL_TC_THREADS)
        };
        let hg = largest_divisor_at_most(a.group, rows);
        // A power of two dividing the item size, so an item splits into whole sub-blocks.
        let qt = 1usize << (rows / hg).ilog2();
        let item = PREFILL_ITEM_TOKENS as usize;
        let qt = qt.min(item);
        let nsub = item / qt;
        let items = batch.at(batch.off.prefill_items, &self.stream);
        let (hg32, qt32, nsub32) = (as_u32(hg, "hg")?, as_u32(qt, "qt")?, as_u32(nsub, "nsub")?);
        let scale = params.scale;
        launch!(
            self,
            f,
            "attn_prefill",
            grid(
                batch.num_prefill_items * nsub,
                params.num_heads / hg,
                threads
            )?,
            &a.out,
            &a.q,
            &a.kc,
            &a.vc,
            &a.block_tables,
            &a.seq_lens,
            &a.query_start_loc,
            &items,
            &a.max_blocks,
            &a.block_size,
            &a.num_heads,
            &a.num_kv_heads,
            &hg32,
            &qt32,
            &nsub32,
            &scale
        )
    }

    /// Tokens of sequences with one query: the context split into chunks over blocks, merged
    /// by the block that finishes a token's last chunk. `one_head_kernel: false` keeps to the
    /// grouped kernel where the one-head kernel would run (for tests of their equality).
    fn decode_attention(
        &self,
        batch: &CudaBatch,
        params: &AttentionParams,
        a: &AttentionArgs<'_>,
        one_head_kernel: bool,
    ) -> Result<()> {
        let n = batch.num_decode_tokens;
        // Heads sharing a KV head go to one block, which reads the keys once for them. A step
        // of a few tokens launches one block per head instead (latency-bound: more blocks),
        // and the kernel regroups the heads of a token whose context is long.
        let hg_long = largest_divisor_at_most(a.group, DECODE_MAX_HEADS);
        let hg = if n <= DECODE_SPREAD_TOKENS {
            1
        } else {
            hg_long
        };
        let groups_long = params.num_heads / hg_long;
        let groups = params.num_heads / hg;
        // A recorded graph is replayed for every later step of its shape, so while recording
        // the split must cover the longest context the block table can address.
        let ctx = if self.graphs.is_capturing() {
            batch.max_blocks_per_seq * a.block_size as usize
        } else {
            batch.max_decode_ctx
        };
        // The split depends on the grouped heads only, so it is the same for both launches
        // and both kernels.
        let (chunk, nchunks) = decode_split(n * groups_long, ctx);
        // One head a block and nothing to regroup (no context long enough, or one query head
        // a KV head): the one-head kernel, which computes the same bits with fewer rounds of
        // loads.
        let one_head =
            one_head_kernel && (hg_long == 1 || (hg == 1 && ctx <= DECODE_SHORT_CTX as usize));
        let (kernel, hg_long) = if one_head {
            (&a.f.decode1, 1)
        } else {
            (&a.f.decode, hg_long)
        };
        let tokens = batch.at(batch.off.decode_tokens, &self.stream);
        // Split contexts: the chunk records, and one count per (token, head) for the kernel to
        // find the block that finishes a token.
        let (part, sem) = if nchunks > 1 {
            let floats = n
                .checked_mul(params.num_heads * nchunks * (params.head_dim + 2))
                .ok_or_else(|| BackendError::Batch("decode scratch size overflows".into()))?;
            let counts = n * params.num_heads;
            self.graphs
                .scratch(&self.stream, floats, counts, &self.info.name)?
        } else {
            (0, 0)
        };
        let (hg_long32, short32) = (as_u32(hg_long, "hg")?, DECODE_SHORT_CTX);
        let (hg32, chunk32, nchunks32) = (
            as_u32(hg, "hg")?,
            as_u32(chunk, "chunk")?,
            as_u32(nchunks, "chunks")?,
        );
        let scale = params.scale;
        let mut cfg = grid(n, groups, DECODE_THREADS)?;
        cfg.grid_dim.2 = nchunks32;
        launch!(
            self,
            kernel,
            "attn_decode",
            cfg,
            &a.out,
            &part,
            &sem,
            &a.q,
            &a.kc,
            &a.vc,
            &a.block_tables,
            &a.seq_lens,
            &a.query_start_loc,
            &a.token_seq,
            &tokens,
            &a.max_blocks,
            &a.block_size,
            &a.num_heads,
            &a.num_kv_heads,
            &hg32,
            &hg_long32,
            &short32,
            &chunk32,
            &nchunks32,
            &scale
        )?;
        Ok(())
    }

    /// Decode attention as `Backend::attention` runs it, with the grouped decode kernel even
    /// where the one-head kernel would run (same split, same launch shape): the two must give
    /// the same bits, and tests compare them through this. The batch must be decode-only.
    pub fn attention_decode_grouped(
        &self,
        cache: &CudaKvCache,
        layer: usize,
        batch: &CudaBatch,
        params: &AttentionParams,
        q: &CudaActivations,
        out: &mut CudaActivations,
    ) -> Result<()> {
        let a = self.attention_args(cache, layer, batch, params, q, out)?;
        if batch.num_prefill_items > 0 {
            return Err(BackendError::Batch(
                "attention_decode_grouped takes decode tokens only".into(),
            ));
        }
        if batch.num_decode_tokens == 0 {
            return Ok(());
        }
        self.decode_attention(batch, params, &a, false)
    }

    /// Attention with the reference kernel `paged_attention_<D>` (one block per token and
    /// head, keys walked one by one): same contract and checks as `Backend::attention`. It is
    /// the simplest formulation, kept so tests and benchmarks can compare the tiled kernels
    /// against it on the device.
    pub fn attention_reference(
        &self,
        cache: &CudaKvCache,
        layer: usize,
        batch: &CudaBatch,
        params: &AttentionParams,
        q: &CudaActivations,
        out: &mut CudaActivations,
    ) -> Result<()> {
        let a = self.attention_args(cache, layer, batch, params, q, out)?;
        self.reference_attention(batch, params, &a)
    }

    /// Launches `paged_attention_<D>` over every token of the batch.
    fn reference_attention(
        &self,
        batch: &CudaBatch,
        params: &AttentionParams,
        a: &AttentionArgs<'_>,
    ) -> Result<()> {
        let n = batch.num_tokens;
        if n == 0 {
            return Ok(());
        }
        let scale = params.scale;
        let cfg: LaunchConfig = grid(n, params.num_heads, 128)?;
        launch!(
            self,
            &a.f.reference,
            "paged_attention",
            cfg,
            &a.out,
            &a.q,
            &a.kc,
            &a.vc,
            &a.block_tables,
            &a.seq_lens,
            &a.query_start_loc,
            &a.token_seq,
            &a.max_blocks,
            &a.block_size,
            &a.num_heads,
            &a.num_kv_heads,
            &scale
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_lists_cover_every_token_once() {
        // seq 0: 130 queries (3 items) after 70 keys, seq 1: decode, seq 2: 2 queries,
        // seq 3: decode.
        let qsl = [0u32, 130, 131, 133, 134];
        let lens = [200u32, 3000, 2, 1];
        let w = AttentionWork::new(&qsl, &lens);
        // Items by decreasing context before their first query: 198, 134, 70, 0.
        assert_eq!(w.prefill_items, vec![0, 128, 0, 64, 0, 0, 2, 0]);
        assert_eq!(w.decode_tokens, vec![130, 133]);
        assert_eq!(w.max_decode_ctx, 3000);
        assert!(!w.queries_exceed_context);
        assert!(AttentionWork::new(&[0, 5], &[4]).queries_exceed_context);
    }

    #[test]
    fn head_groups_and_chunks() {
        assert_eq!(largest_divisor_at_most(4, 8), 4);
        assert_eq!(largest_divisor_at_most(12, 8), 6);
        assert_eq!(largest_divisor_at_most(7, 64), 7);
        assert_eq!(largest_divisor_at_most(1, 8), 1);
        // Enough blocks already: one chunk, no merge.
        assert_eq!(decode_split(2048, 1024), (1024, 1));
        // Few sequences with long contexts: split, every chunk non-empty.
        let (chunk, n) = decode_split(256, 8192);
        assert_eq!((chunk, n), (1024, 8));
        for (items, ctx) in [(1, 1), (1, 100_000), (3, 3000), (700, 257)] {
            let (chunk, n) = decode_split(items, ctx);
            assert!(chunk >= 32 && chunk % 32 == 0 && (n - 1) * chunk < ctx && n * chunk >= ctx);
        }
        // A short context and the widest table of a recording cut at the same keys.
        for (items, widest) in [(8, 32_768), (16, 16_384), (64, 4096)] {
            let (short, n) = decode_split(items, 20);
            assert_eq!((short, n), (DECODE_MIN_CHUNK, 1));
            assert_eq!(decode_split(items, 1000).0, DECODE_MIN_CHUNK);
            assert_eq!(decode_split(items, widest).0, DECODE_MIN_CHUNK);
        }
    }
}
