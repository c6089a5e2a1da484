//! Device-resident weights, activations, KV cache, rotary tables and step metadata.
//!
//! Invariants:
//! - Every float tensor is in the backend's element type (`CudaDType`), stored as raw `u16`
//!   words (two per f32 element); weights of any dense checkpoint type are converted at load.
//!   Sizes and offsets in this module count elements, not words.
//! - The KV cache is one allocation: layer `l`'s keys are the `2l`-th `[num_slots, width]`
//!   slab and its values the `(2l+1)`-th, where `width = num_kv_heads · head_dim` and a slot is
//!   `block · block_size + offset`.
//! - A batch is one `u32` array copied in one transfer to the backend's persistent upload
//!   buffer (see `graph.rs`); its host-side bounds
//!   (largest position, slot and block id) are kept so that ops can refuse out-of-range
//!   metadata before a kernel reads out of bounds.
//! - A batch also carries the attention work lists derived on the host from `query_start_loc`:
//!   `(seq, first query)` items of `PREFILL_ITEM_TOKENS` queries for every sequence with more
//!   than one query in the step, and the token rows of sequences with exactly one.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};

use crate::{BackendError, KvCacheSpec, Result};

/// The device address of a buffer (the backend runs on one stream, so no event tracking).
pub(crate) fn addr<T>(s: &CudaSlice<T>, stream: &CudaStream) -> u64 {
    s.device_ptr(stream).0
}

/// A parameter on the device: `rows × cols` elements, row-major.
pub struct CudaWeight {
    pub(crate) data: CudaSlice<u16>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
}

impl CudaWeight {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn numel(&self) -> usize {
        self.rows * self.cols
    }
}

/// Activations `[capacity_rows, cols]`, row-major.
pub struct CudaActivations {
    pub(crate) data: CudaSlice<u16>,
    pub(crate) cols: usize,
    pub(crate) capacity_rows: usize,
}

impl CudaActivations {
    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn capacity_rows(&self) -> usize {
        self.capacity_rows
    }

    pub(crate) fn check_rows(&self, rows: usize, what: &'static str) -> Result<()> {
        if rows > self.capacity_rows {
            return Err(BackendError::Capacity {
                what,
                needed: rows,
                capacity: self.capacity_rows,
            });
        }
        Ok(())
    }
}

/// Paged K and V of every layer in one allocation.
pub struct CudaKvCache {
    pub(crate) data: CudaSlice<u16>,
    pub(crate) spec: KvCacheSpec,
    pub(crate) elem_bytes: usize,
}

impl CudaKvCache {
    pub fn spec(&self) -> &KvCacheSpec {
        &self.spec
    }

    pub(crate) fn width(&self) -> usize {
        self.spec.num_kv_heads * self.spec.head_dim
    }

    pub(crate) fn num_slots(&self) -> usize {
        self.spec.num_blocks * self.spec.block_size
    }

    /// Elements of one layer's K (or V) slab.
    pub(crate) fn slab(&self) -> usize {
        self.num_slots() * self.width()
    }

    /// Device addresses of layer `layer`'s K and V slabs.
    pub(crate) fn layer_addrs(&self, layer: usize, stream: &CudaStream) -> Result<(u64, u64)> {
        if layer >= self.spec.num_layers {
            return Err(BackendError::Shape {
                what: "KV layer".into(),
                expected: format!("< {}", self.spec.num_layers),
                got: layer.to_string(),
            });
        }
        let base = addr(&self.data, stream);
        let slab_bytes = (self.slab() * self.elem_bytes) as u64;
        let k = base + 2 * layer as u64 * slab_bytes;
        Ok((k, k + slab_bytes))
    }
}

/// cos/sin of `position × inv_freq[i]`, `[max_positions, half]` f32 each.
pub struct CudaRope {
    pub(crate) cos: CudaSlice<f32>,
    pub(crate) sin: CudaSlice<f32>,
    pub(crate) half: usize,
    pub(crate) max_positions: usize,
    pub(crate) interleaved: bool,
}

/// One step's metadata on the device (see the module invariants for the layout). It lives in
/// the backend's persistent upload buffer, valid until the next step's upload.
pub struct CudaBatch {
    /// Device address of the first word (0 when the batch is empty).
    pub(crate) base: u64,
    /// The upload that wrote it (0 when empty); a later upload overwrites it.
    pub(crate) generation: u64,
    pub(crate) num_tokens: usize,
    pub(crate) num_seqs: usize,
    pub(crate) num_logits: usize,
    pub(crate) max_blocks_per_seq: usize,
    /// Element offsets of each array inside `buf`.
    pub(crate) off: BatchOffsets,
    pub(crate) max_position: Option<u32>,
    pub(crate) max_slot: Option<u32>,
    pub(crate) max_block: Option<u32>,
    /// `(seq, q_off)` pairs at `off.prefill_items` (see the module invariants).
    pub(crate) num_prefill_items: usize,
    /// Token rows at `off.decode_tokens`.
    pub(crate) num_decode_tokens: usize,
    /// Largest context of a decode token (keys it attends to); 0 without decode tokens.
    pub(crate) max_decode_ctx: usize,
    /// Largest `seq_lens` entry.
    pub(crate) max_seq_len: Option<u32>,
    /// Some sequence has more queries in the step than context (an invalid batch).
    pub(crate) queries_exceed_context: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BatchOffsets {
    pub input_ids: usize,
    pub positions: usize,
    pub slot_mapping: usize,
    pub query_start_loc: usize,
    pub seq_lens: usize,
    pub block_tables: usize,
    pub logits_indices: usize,
    pub token_seq: usize,
    pub prefill_items: usize,
    pub decode_tokens: usize,
}

impl CudaBatch {
    pub fn num_tokens(&self) -> usize {
        self.num_tokens
    }

    pub fn num_seqs(&self) -> usize {
        self.num_seqs
    }

    /// Device address of the array at element offset `off` (0 when the batch is empty).
    pub(crate) fn at(&self, off: usize, _stream: &CudaStream) -> u64 {
        if self.base == 0 {
            0
        } else {
            self.base + 4 * off as u64
        }
    }
}

/// Whether `buf` holds fewer than `need` elements (`need` 0: never).
pub(crate) fn too_small<T>(buf: &Option<CudaSlice<T>>, need: usize) -> bool {
    need > 0 && buf.as_ref().is_none_or(|b| b.len() < need)
}

/// Replaces `buf` with a zeroed one of `need` elements and room to spare (so that slowly
/// growing contexts do not reallocate every step) when it is too small; returns whether it did.
pub(crate) fn grow_zeroed<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    buf: &mut Option<CudaSlice<T>>,
    need: usize,
    stream: &Arc<CudaStream>,
    what: &str,
    card: &str,
) -> Result<bool> {
    if !too_small(buf, need) {
        return Ok(false);
    }
    // The old buffer is freed in stream order, after the work that still reads it.
    *buf = None;
    let len = need + need / 2;
    *buf = Some(stream.alloc_zeros::<T>(len).map_err(|e| {
        BackendError::OutOfMemory(format!(
            "{what}: {} MiB on {card}: {e}",
            (len * std::mem::size_of::<T>()) >> 20
        ))
    })?);
    Ok(true)
}
