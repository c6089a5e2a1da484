//! The model runner: owns the backend, the model, the paged KV cache and the step buffers, and
//! turns a list of per-sequence inputs into `input_ids`, `positions`, `slot_mapping`,
//! `block_tables`, `seq_lens` and logits.
//!
//! Invariant: host-side step buffers are reused across steps (cleared, not reallocated), and
//! logits are computed only for sequences that asked for them (their last scheduled token).

use ferrum_backend::{AttentionBatch, Backend, KvCacheSpec, LogitAdjust, RowSampling};
use ferrum_model::{DecoderModel, Workspace};

use crate::error::{ExecutorError, Result};

/// One sequence's share of a step.
#[derive(Debug, Clone, Copy)]
pub struct SeqInput<'a> {
    /// Tokens to run now (a prefill chunk, or the last sampled token when decoding).
    pub tokens: &'a [u32],
    /// Tokens of this sequence already in the KV cache.
    pub num_computed_tokens: usize,
    /// Physical block ids covering at least `num_computed_tokens + tokens.len()` tokens.
    pub block_table: &'a [u32],
    /// Whether the last token's logits are wanted.
    pub want_logits: bool,
}

#[derive(Default)]
struct StepBuffers {
    input_ids: Vec<u32>,
    positions: Vec<u32>,
    slot_mapping: Vec<u32>,
    query_start_loc: Vec<u32>,
    seq_lens: Vec<u32>,
    block_tables: Vec<u32>,
    logits_indices: Vec<u32>,
}

impl StepBuffers {
    fn clear(&mut self) {
        for v in [
            &mut self.input_ids,
            &mut self.positions,
            &mut self.slot_mapping,
            &mut self.query_start_loc,
            &mut self.seq_lens,
            &mut self.block_tables,
            &mut self.logits_indices,
        ] {
            v.clear();
        }
    }

    /// The step these buffers describe, with block table rows `max_blocks_per_seq` wide.
    fn batch(&self, max_blocks_per_seq: usize) -> AttentionBatch<'_> {
        AttentionBatch {
            input_ids: &self.input_ids,
            positions: &self.positions,
            slot_mapping: &self.slot_mapping,
            query_start_loc: &self.query_start_loc,
            seq_lens: &self.seq_lens,
            block_tables: &self.block_tables,
            max_blocks_per_seq,
            logits_indices: &self.logits_indices,
        }
    }
}

/// The longest context a decode graph covers (vLLM's `max_seq_len_to_capture` default).
const MAX_SEQ_LEN_TO_CAPTURE: usize = 8192;

/// Context tiers of the decode graphs below the longest: a step is recorded with block tables
/// as wide as the smallest tier that holds its longest sequence, so that a short context does
/// not replay launches chosen for the longest one (the backend picks its decode attention
/// kernel and split from the context a recording covers).
const GRAPH_CONTEXT_TIERS: [usize; 3] = [256, 1024, 4096];

/// Decode steps replayed as device graphs: the batch is padded to the next bucket, and every
/// block table row is as wide as the smallest of `widths` that holds the step, so that one
/// recording per (bucket, width) serves every step.
struct Graphs {
    buckets: Vec<usize>,
    /// Block table widths, ascending; the last covers the longest context recorded.
    widths: Vec<usize>,
}

impl Graphs {
    /// vLLM's capture sizes: 1, 2, 4, then every multiple of 8 up to the largest batch.
    fn new(max_num_seqs: usize, width: usize, block_size: usize) -> Self {
        let max = max_num_seqs.clamp(1, 512);
        let mut buckets: Vec<usize> = [1, 2, 4].into_iter().filter(|&b| b < max).collect();
        buckets.extend((8..max).step_by(8));
        buckets.push(max);
        let mut widths: Vec<usize> = GRAPH_CONTEXT_TIERS
            .iter()
            .map(|t| t.div_ceil(block_size.max(1)))
            .filter(|&w| w < width)
            .collect();
        widths.push(width);
        widths.dedup();
        Self { buckets, widths }
    }

    fn bucket(&self, n: usize) -> Option<usize> {
        self.buckets.iter().copied().find(|&b| b >= n)
    }

    /// The narrowest width that holds `blocks` block table entries.
    fn width(&self, blocks: usize) -> Option<usize> {
        self.widths.iter().copied().find(|&w| w >= blocks)
    }

    /// The backend's key of a recording.
    fn key(&self, bucket: usize, width: usize) -> usize {
        let most = self.widths.last().copied().unwrap_or(0);
        bucket * (most + 1) + width
    }
}

pub struct ModelRunner<B: Backend> {
    backend: B,
    model: DecoderModel<B>,
    kv: B::KvCache,
    kv_spec: KvCacheSpec,
    ws: Workspace<B>,
    max_num_seqs: usize,
    buf: StepBuffers,
    graphs: Option<Graphs>,
}

impl<B: Backend> ModelRunner<B> {
    /// `max_num_batched_tokens` bounds the tokens of one step; `max_num_seqs` its sequences.
    pub fn new(
        backend: B,
        model: DecoderModel<B>,
        kv_spec: KvCacheSpec,
        max_num_batched_tokens: usize,
        max_num_seqs: usize,
    ) -> Result<Self> {
        let kv = backend.new_kv_cache(&kv_spec)?;
        let ws = model.workspace(&backend, max_num_batched_tokens, max_num_seqs)?;
        Ok(Self {
            backend,
            model,
            kv,
            kv_spec,
            ws,
            max_num_seqs,
            buf: StepBuffers::default(),
            graphs: None,
        })
    }

    /// KV blocks that [`Self::profile_run`] needs for `num_tokens` tokens in sequences of at
    /// most `max_seq_len`.
    pub fn profile_blocks(num_tokens: usize, max_seq_len: usize, block_size: usize) -> usize {
        let seq_len = max_seq_len.max(1);
        let full = num_tokens / seq_len;
        let rest = num_tokens % seq_len;
        full * seq_len.div_ceil(block_size) + rest.div_ceil(block_size)
    }

    /// One forward pass over `num_tokens` prompt tokens (id 0, in sequences of at most
    /// `max_seq_len`, at most `max_num_seqs` of them, each asking for logits), so that every
    /// buffer a step allocates on first use exists: the device memory in use afterwards is a
    /// step's peak. The KV cache needs [`Self::profile_blocks`] blocks; what the pass writes
    /// there is meaningless, so call [`Self::replace_kv_cache`] before serving.
    pub fn profile_run(&mut self, num_tokens: usize, max_seq_len: usize) -> Result<()> {
        let seq_len = max_seq_len.max(1);
        let tokens = vec![0u32; seq_len];
        let mut lens = Vec::new();
        let mut left = num_tokens.min(seq_len * self.max_num_seqs);
        while left > 0 {
            let n = left.min(seq_len);
            lens.push(n);
            left -= n;
        }
        let bs = self.kv_spec.block_size;
        let mut tables: Vec<Vec<u32>> = Vec::with_capacity(lens.len());
        let mut next = 0u32;
        for &n in &lens {
            let blocks = n.div_ceil(bs) as u32;
            tables.push((next..next + blocks).collect());
            next += blocks;
        }
        if next as usize > self.kv_spec.num_blocks {
            return Err(ExecutorError::InvalidStep(format!(
                "the profiling pass needs {next} KV blocks, the cache has {}",
                self.kv_spec.num_blocks
            )));
        }
        let seqs: Vec<SeqInput<'_>> = lens
            .iter()
            .zip(&tables)
            .map(|(&n, table)| SeqInput {
                tokens: &tokens[..n],
                num_computed_tokens: 0,
                block_table: table,
                want_logits: true,
            })
            .collect();
        if !seqs.is_empty() {
            self.forward(&seqs)?;
        }
        Ok(())
    }

    /// Gives the KV cache back and allocates one of `spec`'s shape (the old one is released
    /// first, so both never need room at once). Before graphs are enabled only: recordings
    /// hold the cache's addresses.
    pub fn replace_kv_cache(&mut self, spec: KvCacheSpec) -> Result<()> {
        if self.graphs.is_some() {
            return Err(ExecutorError::InvalidStep(
                "the KV cache cannot be replaced once graphs are enabled".into(),
            ));
        }
        let placeholder = KvCacheSpec {
            num_blocks: 1,
            ..spec
        };
        self.kv = self.backend.new_kv_cache(&placeholder)?;
        self.kv = self.backend.new_kv_cache(&spec)?;
        self.kv_spec = spec;
        Ok(())
    }

    /// Replays decode steps as device graphs where the backend records them (one recording
    /// per batch-size bucket and context tier, made on first use). `max_model_len` bounds
    /// every sequence, and so the widest block table the recordings assume. Returns whether
    /// graphs are on.
    pub fn enable_graphs(&mut self, max_model_len: usize) -> bool {
        if !self.backend.supports_graphs() {
            return false;
        }
        // Longer contexts run op by op: the widest recording's block tables are this wide,
        // and its attention split covers this many tokens.
        let width = max_model_len
            .min(MAX_SEQ_LEN_TO_CAPTURE)
            .div_ceil(self.kv_spec.block_size)
            .max(1);
        let g = Graphs::new(
            self.max_num_seqs.min(self.ws.max_tokens()),
            width,
            self.kv_spec.block_size,
        );
        tracing::info!(
            buckets = g.buckets.len(),
            largest = g.buckets.last().copied().unwrap_or(0),
            context_tiers = g.widths.len(),
            "decode steps run as device graphs (recorded per batch size and context tier on first use)"
        );
        self.graphs = Some(g);
        true
    }

    pub fn model(&self) -> &DecoderModel<B> {
        &self.model
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn kv_spec(&self) -> &KvCacheSpec {
        &self.kv_spec
    }

    fn build(&mut self, seqs: &[SeqInput<'_>]) -> Result<usize> {
        let bs = self.kv_spec.block_size;
        let b = &mut self.buf;
        b.clear();
        let max_blocks = seqs
            .iter()
            .map(|s| (s.num_computed_tokens + s.tokens.len()).div_ceil(bs))
            .max()
            .unwrap_or(0);
        b.query_start_loc.push(0);
        for (i, s) in seqs.iter().enumerate() {
            let total = s.num_computed_tokens + s.tokens.len();
            let need = total.div_ceil(bs);
            let table = s.block_table.get(..need).ok_or_else(|| {
                ExecutorError::InvalidStep(format!(
                    "sequence {i} needs {need} blocks, block table has {}",
                    s.block_table.len()
                ))
            })?;
            for (j, &t) in s.tokens.iter().enumerate() {
                let pos = s.num_computed_tokens + j;
                b.input_ids.push(t);
                b.positions.push(pos as u32);
                b.slot_mapping
                    .push(table[pos / bs] * bs as u32 + (pos % bs) as u32);
            }
            if s.want_logits && !s.tokens.is_empty() {
                b.logits_indices.push(b.input_ids.len() as u32 - 1);
            }
            b.query_start_loc.push(b.input_ids.len() as u32);
            b.seq_lens.push(total as u32);
            b.block_tables.extend_from_slice(table);
            b.block_tables.resize((i + 1) * max_blocks, 0);
        }
        Ok(max_blocks)
    }

    /// Runs one forward pass; returns `[num_logits × vocab]` logits in the order of the
    /// sequences that asked for them.
    pub fn execute(&mut self, seqs: &[SeqInput<'_>]) -> Result<Vec<f32>> {
        let num_logits = self.forward(seqs)?;
        Ok(self.backend.to_host(&self.ws.logits, num_logits)?)
    }

    /// Selects one token per logits row of the last forward pass on the device (see
    /// [`Backend::sample`]).
    pub fn sample_on_device(
        &mut self,
        rows: &[RowSampling],
        adjust: &[LogitAdjust],
    ) -> Result<Vec<u32>> {
        Ok(self.backend.sample(&mut self.ws.logits, rows, adjust)?)
    }

    /// As [`Self::sample_on_device`], returning at once with a ticket for
    /// [`Self::wait_sampled`] (see [`Backend::sample_deferred`]).
    pub fn sample_deferred(&mut self, rows: &[RowSampling], adjust: &[LogitAdjust]) -> Result<u64> {
        Ok(self
            .backend
            .sample_deferred(&mut self.ws.logits, rows, adjust)?)
    }

    /// The tokens of ticket `ticket`, into `out` (see [`Backend::wait_sampled`]).
    pub fn wait_sampled(&self, ticket: u64, out: &mut Vec<u32>) -> Result<()> {
        Ok(self.backend.wait_sampled(ticket, out)?)
    }

    /// Logits rows `rows` of the last forward pass as f32, concatenated.
    pub fn logit_rows(&self, rows: &[usize]) -> Result<Vec<f32>> {
        Ok(self.backend.rows_to_host(&self.ws.logits, rows)?)
    }

    /// All `num_logits` rows of the last forward pass as f32, into a buffer the caller keeps
    /// from step to step.
    pub fn logits_to_host_into(&self, num_logits: usize, out: &mut Vec<f32>) -> Result<()> {
        Ok(self
            .backend
            .to_host_into(&self.ws.logits, num_logits, out)?)
    }

    /// Runs every step op by op again (recordings stay with the backend).
    pub fn disable_graphs(&mut self) {
        self.graphs = None;
    }

    /// Builds a decode step padded to `bucket` sequences with block tables `width` wide.
    /// Padding rows read and write only the reserved null block 0 (position 0, one token of
    /// context) and their logits are never sampled. None when a sequence needs a wider table.
    fn build_padded(&mut self, seqs: &[SeqInput<'_>], bucket: usize, width: usize) -> Option<()> {
        let bs = self.kv_spec.block_size;
        let b = &mut self.buf;
        b.clear();
        b.query_start_loc.push(0);
        for i in 0..bucket {
            let (token, pos, table): (u32, usize, &[u32]) = match seqs.get(i) {
                Some(s) => {
                    let pos = s.num_computed_tokens;
                    let need = (pos + 1).div_ceil(bs);
                    if need > width {
                        return None;
                    }
                    (s.tokens[0], pos, s.block_table.get(..need)?)
                }
                None => (0, 0, &[0][..]),
            };
            b.input_ids.push(token);
            b.positions.push(pos as u32);
            b.slot_mapping
                .push(*table.get(pos / bs)? * bs as u32 + (pos % bs) as u32);
            b.logits_indices.push(i as u32);
            b.query_start_loc.push(i as u32 + 1);
            b.seq_lens.push(pos as u32 + 1);
            b.block_tables.extend_from_slice(table);
            b.block_tables.resize((i + 1) * width, 0);
        }
        Some(())
    }

    /// A decode step (one token per sequence, every sequence sampled) through the graph of
    /// its bucket, recorded first if needed. None when the step does not fit a graph.
    fn forward_graph(
        &mut self,
        seqs: &[SeqInput<'_>],
        patches: &[[u32; 2]],
    ) -> Result<Option<usize>> {
        let Some(g) = &self.graphs else {
            return Ok(None);
        };
        if !seqs.iter().all(|s| s.tokens.len() == 1 && s.want_logits) {
            return Ok(None);
        }
        let bs = self.kv_spec.block_size;
        let blocks = seqs
            .iter()
            .map(|s| (s.num_computed_tokens + 1).div_ceil(bs))
            .max()
            .unwrap_or(1);
        let (Some(bucket), Some(width)) = (g.bucket(seqs.len()), g.width(blocks)) else {
            return Ok(None);
        };
        let key = g.key(bucket, width);
        if self.build_padded(seqs, bucket, width).is_none() {
            return Ok(None);
        }
        let b = &self.buf;
        let batch = b.batch(width);
        batch
            .validate(self.kv_spec.block_size)
            .map_err(ExecutorError::InvalidStep)?;
        // A replay runs no op's host-side checks: make them here.
        let max_pos = self.model.config().max_position_embeddings;
        if let Some(&p) = b.positions.iter().find(|&&p| p as usize >= max_pos) {
            return Err(ExecutorError::InvalidStep(format!(
                "position {p} beyond the model's {max_pos}"
            )));
        }
        let nb = self.kv_spec.num_blocks;
        if let Some(&blk) = b.block_tables.iter().find(|&&x| x as usize >= nb) {
            return Err(ExecutorError::InvalidStep(format!(
                "block {blk} beyond the KV cache of {nb} blocks"
            )));
        }
        let device_batch = self.backend.prepare_batch(&batch)?;
        self.backend.patch_input_ids(&device_batch, patches)?;
        if !self.backend.graph_replay(key)? {
            self.backend.graph_begin(key)?;
            let recorded = self.model.forward(
                &self.backend,
                &device_batch,
                bucket,
                bucket,
                &mut self.kv,
                &mut self.ws,
            );
            self.backend.graph_end(recorded.is_ok())?;
            let replayed = match recorded {
                Ok(()) => self.backend.graph_replay(key)?,
                Err(e) => {
                    // Nothing recorded ran; the backend may need to prepare first (it does
                    // so before the next recording). This step runs op by op.
                    tracing::debug!(bucket, width, error = %e, "decode graph not recorded");
                    false
                }
            };
            if !replayed {
                self.model.forward(
                    &self.backend,
                    &device_batch,
                    bucket,
                    bucket,
                    &mut self.kv,
                    &mut self.ws,
                )?;
            }
        }
        Ok(Some(seqs.len()))
    }

    /// Runs one forward pass and leaves the logits on the device; returns their row count,
    /// one per sequence that asked for logits, in order.
    pub fn forward(&mut self, seqs: &[SeqInput<'_>]) -> Result<usize> {
        self.forward_patched(seqs, &[])
    }

    /// As [`Self::forward`], with some input tokens taken on the device from the latest
    /// deferred sampling: `[t, r]` sets the step's token `t` (counted over the sequences in
    /// order) to that sampling's row `r` (see [`Backend::patch_input_ids`]).
    pub fn forward_patched(
        &mut self,
        seqs: &[SeqInput<'_>],
        patches: &[[u32; 2]],
    ) -> Result<usize> {
        if seqs.len() <= self.max_num_seqs {
            if let Some(n) = self.forward_graph(seqs, patches)? {
                return Ok(n);
            }
        }
        if seqs.len() > self.max_num_seqs {
            return Err(ExecutorError::InvalidStep(format!(
                "{} sequences exceed max_num_seqs {}",
                seqs.len(),
                self.max_num_seqs
            )));
        }
        let max_blocks = self.build(seqs)?;
        let batch = self.buf.batch(max_blocks);
        batch
            .validate(self.kv_spec.block_size)
            .map_err(ExecutorError::InvalidStep)?;
        let num_tokens = batch.num_tokens();
        let num_logits = batch.logits_indices.len();
        let device_batch = self.backend.prepare_batch(&batch)?;
        self.backend.patch_input_ids(&device_batch, patches)?;
        self.model.forward(
            &self.backend,
            &device_batch,
            num_tokens,
            num_logits,
            &mut self.kv,
            &mut self.ws,
        )?;
        Ok(num_logits)
    }
}

#[cfg(test)]
mod tests {
    use super::Graphs;

    #[test]
    fn graph_widths_are_tiers_below_the_longest_context() {
        // 8192 tokens in blocks of 16: tiers of 256, 1024 and 4096 tokens, then the rest.
        let g = Graphs::new(256, 512, 16);
        assert_eq!(g.widths, vec![16, 64, 256, 512]);
        assert_eq!(g.width(1), Some(16));
        assert_eq!(g.width(16), Some(16));
        assert_eq!(g.width(17), Some(64));
        assert_eq!(g.width(300), Some(512));
        assert_eq!(g.width(513), None);
        // A short model: the tiers it cannot reach are left out.
        let g = Graphs::new(8, 10, 16);
        assert_eq!(g.widths, vec![10]);
        let g = Graphs::new(8, 16, 16);
        assert_eq!(g.widths, vec![16]);
        // Every (bucket, width) pair has its own key.
        let g = Graphs::new(64, 512, 16);
        let mut keys: Vec<usize> = g
            .buckets
            .iter()
            .flat_map(|&b| g.widths.iter().map(move |&w| (b, w)))
            .map(|(b, w)| g.key(b, w))
            .collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }
}
