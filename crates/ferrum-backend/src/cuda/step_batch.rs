//! One step's metadata on the device: laid out on the host in one `u32` array (the layout
//! of `tensor.rs`'s module header, with the attention work lists derived here) and copied to
//! the backend's persistent upload buffer.
//!
//! Invariant: the host-side arrays are the backend's ([`StepHost`]) and are cleared, not
//! reallocated, each step; they grow only when a step is larger than every one before.

use super::attention::AttentionWork;
use super::tensor::{BatchOffsets, CudaBatch};
use super::CudaBackend;
use crate::{AttentionBatch, BackendError, Result};

/// The host side of the step layout, kept by the backend from step to step.
#[derive(Default)]
pub(super) struct StepHost {
    words: Vec<u32>,
    token_seq: Vec<u32>,
    work: AttentionWork,
}

pub(super) fn upload(be: &CudaBackend, b: &AttentionBatch<'_>) -> Result<CudaBatch> {
    let n = b.num_tokens();
    let s = b.num_seqs();
    let mut guard = be
        .step_host
        .lock()
        .map_err(|_| BackendError::Device("step layout state poisoned".into()))?;
    let StepHost {
        words: host,
        token_seq,
        work,
    } = &mut *guard;
    host.clear();
    token_seq.clear();
    let mut off = BatchOffsets::default();
    let mut push = |v: &[u32], at: &mut usize| {
        *at = host.len();
        host.extend_from_slice(v);
    };
    push(b.input_ids, &mut off.input_ids);
    push(b.positions, &mut off.positions);
    push(b.slot_mapping, &mut off.slot_mapping);
    push(b.query_start_loc, &mut off.query_start_loc);
    push(b.seq_lens, &mut off.seq_lens);
    let tables = &b.block_tables[..(s * b.max_blocks_per_seq).min(b.block_tables.len())];
    push(tables, &mut off.block_tables);
    push(b.logits_indices, &mut off.logits_indices);
    // Which sequence each token belongs to, so the attention kernel needs no search.
    for (i, w) in b.query_start_loc.windows(2).enumerate() {
        token_seq.extend(std::iter::repeat_n(
            i as u32,
            w[1].saturating_sub(w[0]) as usize,
        ));
    }
    if token_seq.len() != n {
        return Err(BackendError::Batch(format!(
            "query_start_loc covers {} tokens, the batch has {n}",
            token_seq.len()
        )));
    }
    push(token_seq, &mut off.token_seq);
    work.fill(b.query_start_loc, b.seq_lens);
    push(&work.prefill_items, &mut off.prefill_items);
    push(&work.decode_tokens, &mut off.decode_tokens);
    let (base, generation) = if host.is_empty() {
        (0, 0)
    } else {
        be.graphs.upload(&be.stream, host)?
    };
    Ok(CudaBatch {
        base,
        generation,
        num_tokens: n,
        num_seqs: s,
        num_logits: b.logits_indices.len(),
        max_blocks_per_seq: b.max_blocks_per_seq,
        off,
        max_position: b.positions.iter().copied().max(),
        max_slot: b.slot_mapping.iter().copied().max(),
        max_block: tables.iter().copied().max(),
        num_prefill_items: work.prefill_items.len() / 2,
        num_decode_tokens: work.decode_tokens.len(),
        max_decode_ctx: work.max_decode_ctx,
        max_seq_len: b.seq_lens.iter().copied().max(),
        queries_exceed_context: work.queries_exceed_context,
    })
}
