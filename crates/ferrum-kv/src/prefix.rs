//! Prefix caching on top of the manager: find the longest cached prefix of a request, and
//! register a request's blocks once they are full and computed.
//!
//! Rules:
//! - only full blocks are hashed and cached; a partly filled block is never shared;
//! - a hit never covers the whole request: the last token is always computed, because the step
//!   must produce its logits (vLLM does the same);
//! - a hit is accepted block by block only after an exact comparison (tokens, extra keys, and
//!   that the cached block's parent is the very block matched just before, still holding the same
//!   contents), so by induction the whole prefix is identical and a hash collision can only cost
//!   a miss, never wrong KV;
//! - blocks are registered after the step that computed them (their KV exists only then).

use ferrum_types::TokenId;

use crate::hash::ExtraKeys;
use crate::manager::unmark_in_flight;
use crate::pool::Lookup;
use crate::request_blocks::RequestBlocks;
use crate::{ComputedBlocks, KvCacheManager};

impl KvCacheManager {
    /// The longest verified cached prefix of `token_ids` (the request's prompt, plus its output
    /// so far when it resumes after preemption), in whole blocks and short of the last token.
    ///
    /// Takes no reference: pass the result to `allocate_slots` right away. Returns nothing for a
    /// request that already holds blocks, or when prefix caching is off.
    pub fn get_computed_blocks(
        &mut self,
        request_id: &str,
        token_ids: &[TokenId],
        extra: &ExtraKeys,
    ) -> ComputedBlocks {
        if !self.enable_prefix_caching || token_ids.is_empty() {
            return ComputedBlocks::default();
        }
        if !self.requests.contains_key(request_id) {
            let state = RequestBlocks::new(true, self.hasher.extra_digest(extra));
            self.requests.insert(request_id.to_owned(), state);
        }
        let Some(state) = self.requests.get_mut(request_id) else {
            return ComputedBlocks::default();
        };
        if !state.block_ids.is_empty() || !state.hashable {
            return ComputedBlocks::default();
        }
        let bs = self.block_size;
        state.extend_hashes(&self.hasher, token_ids, bs, token_ids.len() / bs);

        let max_hit_blocks = (token_ids.len() - 1) / bs;
        let mut block_ids = Vec::new();
        let mut parent = None;
        for (i, &hash) in state.block_hashes.iter().take(max_hit_blocks).enumerate() {
            let tokens = &token_ids[i * bs..(i + 1) * bs];
            match self.pool.lookup(hash, tokens, parent, state.extra) {
                Lookup::Hit(block) => {
                    block_ids.push(block.id);
                    parent = Some(block);
                }
                Lookup::Miss | Lookup::Mismatch => break,
            }
        }
        let next = block_ids.len();
        let next_block_in_flight =
            next < max_hit_blocks && self.in_flight.contains_key(&state.block_hashes[next]);
        state.pending_query = Some(token_ids.len());
        ComputedBlocks {
            num_computed_tokens: next * bs,
            block_ids,
            next_block_in_flight,
        }
    }

    /// Registers the request's blocks that are full within its first `num_computed_tokens`
    /// tokens (KV written) and not yet registered. `token_ids` are the request's tokens (prompt
    /// then output), at least `num_computed_tokens` of them.
    pub fn cache_full_blocks(
        &mut self,
        request_id: &str,
        token_ids: &[TokenId],
        num_computed_tokens: usize,
    ) {
        if !self.enable_prefix_caching {
            return;
        }
        let bs = self.block_size;
        let Some(state) = self.requests.get_mut(request_id) else {
            return;
        };
        let num_full = (num_computed_tokens.min(token_ids.len()) / bs).min(state.block_ids.len());
        if !state.hashable || num_full <= state.num_cached_blocks {
            return;
        }
        state.extend_hashes(&self.hasher, token_ids, bs, num_full);
        for i in state.num_cached_blocks..num_full {
            let hash = state.block_hashes[i];
            if i < state.in_flight_upto {
                unmark_in_flight(&mut self.in_flight, hash);
            }
            if state.chain_broken {
                continue;
            }
            let tokens = &token_ids[i * bs..(i + 1) * bs];
            let parent = state.last_cached;
            // If identical content is already cached (a twin request computed it too), the
            // chain continues through that block and ours stays unregistered.
            let canonical = match self.pool.lookup(hash, tokens, parent, state.extra) {
                Lookup::Hit(block) => Some(block),
                Lookup::Mismatch => None,
                Lookup::Miss => {
                    let id = state.block_ids[i];
                    self.pool
                        .register(id, hash, tokens, parent, state.extra)
                        .then(|| self.pool.block_ref(id))
                }
            };
            match canonical {
                Some(block) => state.last_cached = Some(block),
                None => state.chain_broken = true,
            }
        }
        state.num_cached_blocks = num_full;
        state.in_flight_upto = state.in_flight_upto.max(num_full);
    }
}
