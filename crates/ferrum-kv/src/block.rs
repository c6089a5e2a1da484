//! One KV block's bookkeeping: its ref count and, while it is in the prefix cache, what it holds.

use crate::hash::{BlockHash, ExtraDigest};

/// Index of a block in the pool (and in the executor's KV tensors).
pub type BlockId = u32;

/// Block 0 is never handed out. The executor may point padding slots (the unused rows of a
/// padded batch) at it, so writes there land where no request reads.
pub const NULL_BLOCK_ID: BlockId = 0;

/// A block *as it was* when a reference was taken: `generation` changes every time the block
/// loses its cached contents, so a stale reference can be told from a live one in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockRef {
    pub(crate) id: BlockId,
    pub(crate) generation: u32,
}

/// What a cached block holds, beyond its token ids (stored flat in the pool). Together they
/// identify the block's KV exactly: same tokens, same extra keys, same (still live) parent block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachedMeta {
    pub(crate) hash: BlockHash,
    pub(crate) parent: Option<BlockRef>,
    pub(crate) extra: ExtraDigest,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Block {
    /// Number of requests whose block table holds this block.
    pub(crate) ref_cnt: u32,
    /// Bumped whenever `cached` is cleared (eviction, cache reset).
    pub(crate) generation: u32,
    /// `Some` while the block is registered in the pool's hash table. Kept after the last holder
    /// frees the block (lazy eviction) and cleared only when the block is reused.
    pub(crate) cached: Option<CachedMeta>,
}
