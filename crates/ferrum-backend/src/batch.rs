//! Host-side description of one forward step.

/// How pairs of a head's dimensions are rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Dimension `i` pairs with `i + rotary_dim/2` (Hugging Face `rotate_half`).
    Neox,
    /// Dimension `2i` pairs with `2i + 1` (GGUF Llama checkpoints, whose q/k rows are permuted).
    Interleaved,
}

/// Shape of the paged KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvCacheSpec {
    pub num_layers: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub block_size: usize,
    pub num_blocks: usize,
}

impl KvCacheSpec {
    /// Bytes of K and V for one token across all layers, at `elem_bytes` per element.
    pub fn bytes_per_token(&self, elem_bytes: usize) -> usize {
        2 * self.num_layers * self.num_kv_heads * self.head_dim * elem_bytes
    }
}

/// Attention geometry of one layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionParams {
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub scale: f32,
}

/// One step's tokens, flattened over sequences (vLLM's varlen layout).
///
/// Sequence `s` owns token rows `query_start_loc[s]..query_start_loc[s+1]`; its context after
/// this step is `seq_lens[s]` tokens, the last `query_len` of which are this step's.
#[derive(Debug, Clone, Copy)]
pub struct AttentionBatch<'a> {
    pub input_ids: &'a [u32],
    pub positions: &'a [u32],
    pub slot_mapping: &'a [u32],
    pub query_start_loc: &'a [u32],
    pub seq_lens: &'a [u32],
    /// `num_seqs × max_blocks_per_seq`, row-major; unused entries are ignored.
    pub block_tables: &'a [u32],
    pub max_blocks_per_seq: usize,
    /// Rows whose hidden states go to the LM head.
    pub logits_indices: &'a [u32],
}

impl AttentionBatch<'_> {
    pub fn num_tokens(&self) -> usize {
        self.input_ids.len()
    }

    pub fn num_seqs(&self) -> usize {
        self.seq_lens.len()
    }

    /// Checks the internal consistency of the batch (lengths, monotone offsets, bounds).
    pub fn validate(&self, block_size: usize) -> Result<(), String> {
        let n = self.input_ids.len();
        if self.positions.len() != n || self.slot_mapping.len() != n {
            return Err(format!(
                "{n} input ids but {} positions and {} slots",
                self.positions.len(),
                self.slot_mapping.len()
            ));
        }
        let s = self.seq_lens.len();
        if self.query_start_loc.len() != s + 1 {
            return Err(format!(
                "{s} sequences need {} query offsets, got {}",
                s + 1,
                self.query_start_loc.len()
            ));
        }
        if self.query_start_loc.first() != Some(&0)
            || self.query_start_loc.last().map(|&x| x as usize) != Some(n)
        {
            return Err("query_start_loc must start at 0 and end at the token count".into());
        }
        if self.block_tables.len() < s * self.max_blocks_per_seq {
            return Err("block table is shorter than num_seqs × max_blocks_per_seq".into());
        }
        for i in 0..s {
            let (a, b) = (self.query_start_loc[i], self.query_start_loc[i + 1]);
            if b < a {
                return Err("query_start_loc must not decrease".into());
            }
            if ((b - a) as usize) > self.seq_lens[i] as usize {
                return Err(format!("sequence {i} has more new tokens than context"));
            }
            let blocks = (self.seq_lens[i] as usize).div_ceil(block_size);
            if blocks > self.max_blocks_per_seq {
                return Err(format!(
                    "sequence {i} needs {blocks} blocks, table holds {}",
                    self.max_blocks_per_seq
                ));
            }
        }
        if self.logits_indices.iter().any(|&r| r as usize >= n) {
            return Err("logits index out of range".into());
        }
        Ok(())
    }
}
