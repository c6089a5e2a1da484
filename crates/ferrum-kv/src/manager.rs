//! `KvCacheManager`: block tables per request on top of the pool (vLLM v1's `KVCacheManager`).
//!
//! Protocol, as the scheduler uses it:
//! 1. admission: `get_computed_blocks` (the longest verified cached prefix), then at once
//!    `allocate_slots(.., Some(&computed))`; a `None` answer changes nothing;
//! 2. every later step: `allocate_slots(id, num_tokens_after_step, None)`; `None` means "preempt
//!    someone and retry";
//! 3. after the step ran: `cache_full_blocks` (prefix.rs) registers blocks that became full;
//! 4. finish, abort or preemption: `free`, which releases the blocks tail-first.
//!
//! Invariants: a request's block table only grows until it is freed; every block id in any table
//! is held (ref count = number of tables holding it); nothing changes when allocation fails.

use foldhash::HashMap;

use crate::hash::{BlockHash, BlockHasher, ExtraDigest};
use crate::pool::BlockPool;
use crate::request_blocks::RequestBlocks;
use crate::{BlockId, KvCacheError, PrefixCacheStats};

/// Sizing and features of one KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvCacheConfig {
    /// Tokens per block.
    pub block_size: usize,
    /// Blocks in the pool, including the reserved null block 0.
    pub num_blocks: usize,
    pub enable_prefix_caching: bool,
}

/// The longest cached prefix of a request, found by [`KvCacheManager::get_computed_blocks`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComputedBlocks {
    /// Cached blocks holding the prefix, in order.
    pub block_ids: Vec<BlockId>,
    /// `block_ids.len() * block_size`.
    pub num_computed_tokens: usize,
    /// The block right after the prefix is being computed by another request this step. Admitting
    /// this request one step later turns it into a hit (how `n > 1` siblings come to share their
    /// prompt instead of each computing it).
    pub next_block_in_flight: bool,
}

/// Blocks appended to a request's block table by one `allocate_slots` call: on the first call,
/// the cached prefix blocks followed by fresh ones (the whole table); later, only fresh ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewBlocks {
    pub block_ids: Vec<BlockId>,
}

/// Block tables, allocation and prefix caching for every request on one device.
#[derive(Debug, Clone)]
pub struct KvCacheManager {
    pub(crate) block_size: usize,
    pub(crate) enable_prefix_caching: bool,
    pub(crate) pool: BlockPool,
    pub(crate) hasher: BlockHasher,
    pub(crate) requests: HashMap<String, RequestBlocks>,
    /// Hashes of blocks scheduled this step but not yet registered, with how many requests are
    /// computing each.
    pub(crate) in_flight: HashMap<BlockHash, u32>,
    pub(crate) stats: PrefixCacheStats,
}

impl KvCacheManager {
    /// A manager whose block hashes use a fresh random key.
    pub fn new(config: KvCacheConfig) -> Result<Self, KvCacheError> {
        Self::with_hasher(config, BlockHasher::random()?)
    }

    /// A manager with a given hasher (a fixed key makes hashes reproducible).
    pub fn with_hasher(config: KvCacheConfig, hasher: BlockHasher) -> Result<Self, KvCacheError> {
        let pool = BlockPool::new(
            config.num_blocks,
            config.block_size,
            config.enable_prefix_caching,
        )?;
        Ok(Self {
            block_size: config.block_size,
            enable_prefix_caching: config.enable_prefix_caching,
            pool,
            hasher,
            requests: HashMap::default(),
            in_flight: HashMap::default(),
            stats: PrefixCacheStats::default(),
        })
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn enable_prefix_caching(&self) -> bool {
        self.enable_prefix_caching
    }

    /// Blocks needed to hold `num_tokens` tokens.
    pub fn num_blocks_for(&self, num_tokens: usize) -> usize {
        num_tokens.div_ceil(self.block_size)
    }

    /// Makes sure the request's table covers `num_tokens` token slots (everything computed so
    /// far, the cached prefix and the tokens scheduled this step). On the first call, `computed`
    /// is the result of `get_computed_blocks` for this request, taken just before with no other
    /// allocation in between; on later calls it is ignored.
    ///
    /// Returns the blocks appended to the table, or `None`, changing nothing, when the free blocks
    /// (counting the cached prefix blocks this would take off the free list) do not suffice.
    pub fn allocate_slots(
        &mut self,
        request_id: &str,
        num_tokens: usize,
        computed: Option<&ComputedBlocks>,
    ) -> Option<NewBlocks> {
        let mut ctx = Allocator {
            pool: &mut self.pool,
            in_flight: &mut self.in_flight,
            stats: &mut self.stats,
            block_size: self.block_size,
        };
        // One map lookup on the hot path (a running request's decode step).
        if let Some(state) = self.requests.get_mut(request_id) {
            return ctx.grow(state, num_tokens, computed);
        }
        // No prefix lookup happened (prefix caching off): blocks only, nothing to register.
        // The state is kept only if the allocation succeeds, so `None` changes nothing.
        let mut state = RequestBlocks::new(false, ExtraDigest(0));
        let new = ctx.grow(&mut state, num_tokens, computed)?;
        self.requests.insert(request_id.to_owned(), state);
        Some(new)
    }

    /// Releases the request's blocks, last block first, so its tail is evicted before its
    /// (more shareable) head. Unknown ids are ignored, so freeing twice is harmless.
    pub fn free(&mut self, request_id: &str) {
        let Some(state) = self.requests.remove(request_id) else {
            return;
        };
        for hash in state.in_flight_hashes() {
            unmark_in_flight(&mut self.in_flight, *hash);
        }
        self.pool.release(state.block_ids.iter().rev().copied());
    }

    /// The request's block table (empty for an unknown request).
    pub fn block_table(&self, request_id: &str) -> &[BlockId] {
        self.requests
            .get(request_id)
            .map_or(&[], |s| s.block_ids.as_slice())
    }

    pub fn num_free_blocks(&self) -> usize {
        self.pool.num_free_blocks()
    }

    /// Blocks that can be handed out at all (the pool less the null block).
    pub fn num_usable_blocks(&self) -> usize {
        self.pool.num_usable_blocks()
    }

    /// Fraction of usable blocks held by requests, in `[0, 1]` (cached free blocks count as free).
    pub fn usage(&self) -> f64 {
        let usable = self.pool.num_usable_blocks() as f64;
        1.0 - self.pool.num_free_blocks() as f64 / usable
    }

    pub fn prefix_cache_stats(&self) -> PrefixCacheStats {
        self.stats
    }

    /// Forgets every cached block, for example after the weights changed. Refused (false) while
    /// any request holds blocks.
    pub fn reset_prefix_cache(&mut self) -> bool {
        self.pool.reset_prefix_cache()
    }

    /// Read-only view of the pool (free-queue order, ref counts), for tests and metrics.
    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }
}

/// The manager's shared state that an allocation touches, borrowed apart from the request map.
struct Allocator<'a> {
    pool: &'a mut BlockPool,
    in_flight: &'a mut HashMap<BlockHash, u32>,
    stats: &'a mut PrefixCacheStats,
    block_size: usize,
}

impl Allocator<'_> {
    fn grow(
        &mut self,
        state: &mut RequestBlocks,
        num_tokens: usize,
        computed: Option<&ComputedBlocks>,
    ) -> Option<NewBlocks> {
        let held = state.block_ids.len();
        let computed_ids: &[BlockId] = match computed {
            Some(c) if held == 0 => &c.block_ids,
            _ => &[],
        };
        let num_new = num_tokens
            .div_ceil(self.block_size)
            .saturating_sub(held + computed_ids.len());
        let revived = computed_ids
            .iter()
            .filter(|&&id| self.pool.ref_cnt(id) == 0)
            .count();
        if num_new + revived > self.pool.num_free_blocks() {
            return None;
        }
        debug_assert!(computed_ids
            .iter()
            .enumerate()
            .all(|(i, &id)| self.pool.block_hash(id) == state.block_hashes.get(i).copied()));
        self.pool.touch(computed_ids);
        let mut appended = Vec::with_capacity(computed_ids.len() + num_new);
        appended.extend_from_slice(computed_ids);
        if !self.pool.allocate(num_new, &mut appended) {
            // Unreachable (checked above); give back what was touched to stay consistent.
            self.pool.release(computed_ids.iter().rev().copied());
            return None;
        }
        state.block_ids.extend_from_slice(&appended);

        if held == 0 {
            if let Some(&last) = computed_ids.last() {
                state.num_cached_blocks = computed_ids.len();
                state.in_flight_upto = computed_ids.len();
                state.last_cached = Some(self.pool.block_ref(last));
            }
            if let Some(query) = state.pending_query.take() {
                self.stats.queries += query as u64;
                self.stats.hits += (computed_ids.len() * self.block_size) as u64;
            }
        }
        // Blocks that will be full after this step are "in flight" until registered.
        let full_after = (num_tokens / self.block_size).min(state.block_hashes.len());
        let from = state.in_flight_upto.max(state.num_cached_blocks);
        for hash in state.block_hashes.get(from..full_after).unwrap_or(&[]) {
            *self.in_flight.entry(*hash).or_insert(0) += 1;
        }
        state.in_flight_upto = from.max(full_after);
        Some(NewBlocks {
            block_ids: appended,
        })
    }
}

pub(crate) fn unmark_in_flight(in_flight: &mut HashMap<BlockHash, u32>, hash: BlockHash) {
    if let Some(count) = in_flight.get_mut(&hash) {
        *count -= 1;
        if *count == 0 {
            in_flight.remove(&hash);
        }
    }
}
