//! What the manager remembers about one request: its block table and its prefix-cache progress.
//!
//! Invariants:
//! - `block_hashes[i]` is the chained hash of full block `i` of the request's tokens; hashes are
//!   computed once (at the prefix lookup, then as blocks fill) and stay valid across preemption
//!   because tokens are only ever appended;
//! - blocks `0..num_cached_blocks` have been offered to the prefix cache; `last_cached` is the
//!   cached block holding block `num_cached_blocks - 1`'s content (the request's own block, or an
//!   identical block another request registered first), the parent of the next registration;
//! - the request holds one in-flight mark for each hash in `num_cached_blocks..in_flight_upto`.

use ferrum_types::TokenId;

use crate::block::BlockRef;
use crate::hash::{BlockHash, BlockHasher, ExtraDigest};
use crate::BlockId;

#[derive(Debug, Clone)]
pub(crate) struct RequestBlocks {
    pub(crate) block_ids: Vec<BlockId>,
    /// False when the request never went through a prefix lookup (prefix caching off): its
    /// extra keys are unknown, so its blocks must not be registered.
    pub(crate) hashable: bool,
    pub(crate) extra: ExtraDigest,
    pub(crate) block_hashes: Vec<BlockHash>,
    pub(crate) num_cached_blocks: usize,
    pub(crate) last_cached: Option<BlockRef>,
    /// Set when a block could not be registered (hash taken by other content): later blocks of
    /// this request cannot be reached by a lookup, so they are not registered either.
    pub(crate) chain_broken: bool,
    pub(crate) in_flight_upto: usize,
    /// Tokens of the last prefix lookup, counted as a query when the request is admitted.
    pub(crate) pending_query: Option<usize>,
}

impl RequestBlocks {
    pub(crate) fn new(hashable: bool, extra: ExtraDigest) -> Self {
        Self {
            block_ids: Vec::new(),
            hashable,
            extra,
            block_hashes: Vec::new(),
            num_cached_blocks: 0,
            last_cached: None,
            chain_broken: false,
            in_flight_upto: 0,
            pending_query: None,
        }
    }

    /// Computes hashes of full blocks up to `num_blocks` (bounded by the tokens given).
    pub(crate) fn extend_hashes(
        &mut self,
        hasher: &BlockHasher,
        token_ids: &[TokenId],
        block_size: usize,
        num_blocks: usize,
    ) {
        let num_blocks = num_blocks.min(token_ids.len() / block_size);
        for i in self.block_hashes.len()..num_blocks {
            let parent = i.checked_sub(1).map(|p| self.block_hashes[p]);
            let tokens = &token_ids[i * block_size..(i + 1) * block_size];
            self.block_hashes
                .push(hasher.hash_block(parent, tokens, self.extra));
        }
    }

    /// Hashes this request currently marks as being computed.
    pub(crate) fn in_flight_hashes(&self) -> &[BlockHash] {
        let from = self.num_cached_blocks.min(self.block_hashes.len());
        let to = self.in_flight_upto.clamp(from, self.block_hashes.len());
        &self.block_hashes[from..to]
    }
}
