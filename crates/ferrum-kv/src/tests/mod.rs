//! Tests of the manager as a whole: exact states after each operation, and invariants after
//! random operation sequences.

mod check;
mod exact;
mod exact_prefix;
mod props;

use ferrum_types::TokenId;

use crate::{BlockHasher, BlockId, ComputedBlocks, ExtraKeys, KvCacheConfig, KvCacheManager};

pub(crate) const BS: usize = 4;

pub(crate) fn manager_with(num_blocks: usize, hasher: BlockHasher) -> KvCacheManager {
    let config = KvCacheConfig {
        block_size: BS,
        num_blocks,
        enable_prefix_caching: true,
    };
    KvCacheManager::with_hasher(config, hasher).expect("valid config")
}

/// 4-token blocks, `num_blocks - 1` usable, fixed hash key.
pub(crate) fn manager(num_blocks: usize) -> KvCacheManager {
    manager_with(num_blocks, BlockHasher::with_key(7, 11))
}

/// Prefix lookup then allocation of the whole token list, as the scheduler admits a request.
pub(crate) fn admit(
    m: &mut KvCacheManager,
    id: &str,
    tokens: &[TokenId],
) -> (ComputedBlocks, Option<Vec<BlockId>>) {
    let computed = m.get_computed_blocks(id, tokens, &ExtraKeys::default());
    let new = m.allocate_slots(id, tokens.len(), Some(&computed));
    (computed, new.map(|n| n.block_ids))
}

/// Marks all of `tokens` as computed, registering the full blocks.
pub(crate) fn compute(m: &mut KvCacheManager, id: &str, tokens: &[TokenId]) {
    m.cache_full_blocks(id, tokens, tokens.len());
}

pub(crate) fn free_ids(m: &KvCacheManager) -> Vec<BlockId> {
    m.pool().free_block_ids().collect()
}

pub(crate) fn refs(m: &KvCacheManager, ids: &[BlockId]) -> Vec<u32> {
    ids.iter().map(|&id| m.pool().ref_cnt(id)).collect()
}
