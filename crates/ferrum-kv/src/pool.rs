//! `BlockPool`: a flat vector of blocks, an intrusive free list and the prefix-cache hash table.
//!
//! Invariants (checked by the property tests):
//! - every block except the null block is either held (`ref_cnt > 0`) or on the free list, never
//!   both: `num_free + num_used == num_usable`;
//! - `cached[h] == b` if and only if block `b` carries hash `h`; a block carries at most one hash
//!   and a hash maps to at most one block;
//! - free blocks keep their cached contents until they are popped for reuse (lazy eviction), so a
//!   prefix-cache hit can revive a free block by unlinking it from the middle of the list.

use foldhash::HashMap;

use ferrum_types::TokenId;

use crate::block::{Block, BlockRef, CachedMeta};
use crate::free_list::FreeList;
use crate::hash::{BlockHash, ExtraDigest};
use crate::{BlockId, KvCacheError, NULL_BLOCK_ID};

/// Outcome of looking a block hash up in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A block with exactly this content (tokens, extra keys, parent) is cached.
    Hit(BlockRef),
    /// The hash is unknown.
    Miss,
    /// The hash is taken by a block with different content: a hash collision or a stale parent.
    Mismatch,
}

/// The preallocated pool of KV blocks of one device.
#[derive(Debug, Clone)]
pub struct BlockPool {
    block_size: usize,
    blocks: Vec<Block>,
    free: FreeList,
    cached: HashMap<BlockHash, BlockId>,
    /// Token ids of cached blocks, `block_size` per block id; empty without prefix caching.
    tokens: Vec<TokenId>,
}

impl BlockPool {
    pub(crate) fn new(
        num_blocks: usize,
        block_size: usize,
        keep_tokens: bool,
    ) -> Result<Self, KvCacheError> {
        if block_size == 0 {
            return Err(KvCacheError::ZeroBlockSize);
        }
        if num_blocks < 2 {
            return Err(KvCacheError::TooFewBlocks { num_blocks });
        }
        let max = u32::MAX as usize - 1;
        if num_blocks > max {
            return Err(KvCacheError::TooManyBlocks { num_blocks, max });
        }
        let mut free = FreeList::with_capacity(num_blocks);
        // Ascending ids, so a fresh pool hands out 1, 2, 3, ...
        for id in 1..num_blocks as BlockId {
            free.push_back(id);
        }
        let tokens = if keep_tokens {
            vec![0; num_blocks * block_size]
        } else {
            Vec::new()
        };
        Ok(Self {
            block_size,
            blocks: vec![Block::default(); num_blocks],
            free,
            cached: HashMap::default(),
            tokens,
        })
    }

    /// All blocks, the null block included.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Blocks that can be handed out (all but the null block).
    pub fn num_usable_blocks(&self) -> usize {
        self.blocks.len() - 1
    }

    /// Blocks held by no request (some may still carry cached contents).
    pub fn num_free_blocks(&self) -> usize {
        self.free.len()
    }

    pub fn ref_cnt(&self, id: BlockId) -> u32 {
        self.blocks.get(id as usize).map_or(0, |b| b.ref_cnt)
    }

    /// The hash the block is cached under, if any.
    pub fn block_hash(&self, id: BlockId) -> Option<BlockHash> {
        self.blocks.get(id as usize)?.cached.map(|c| c.hash)
    }

    /// The block cached under `hash`, if any.
    pub fn cached_block(&self, hash: BlockHash) -> Option<BlockId> {
        self.cached.get(&hash).copied()
    }

    /// Number of entries in the prefix-cache hash table.
    pub fn num_cached_blocks(&self) -> usize {
        self.cached.len()
    }

    /// Free blocks in eviction order (first evicted first).
    pub fn free_block_ids(&self) -> impl Iterator<Item = BlockId> + '_ {
        self.free.iter()
    }

    pub(crate) fn block_ref(&self, id: BlockId) -> BlockRef {
        let generation = self.blocks.get(id as usize).map_or(0, |b| b.generation);
        BlockRef { id, generation }
    }

    /// Pops `n` blocks from the head of the free list into `out`, evicting their cached contents,
    /// with `ref_cnt = 1`. Returns false, changing nothing, if fewer than `n` are free.
    pub(crate) fn allocate(&mut self, n: usize, out: &mut Vec<BlockId>) -> bool {
        if n > self.free.len() {
            return false;
        }
        out.reserve(n);
        for _ in 0..n {
            let Some(id) = self.free.pop_front() else {
                return false; // unreachable: len was checked
            };
            self.evict(id);
            self.blocks[id as usize].ref_cnt = 1;
            out.push(id);
        }
        true
    }

    /// Takes one more reference on each block; a free (cached) block leaves the free list.
    pub(crate) fn touch(&mut self, ids: &[BlockId]) {
        for &id in ids {
            let block = &mut self.blocks[id as usize];
            if block.ref_cnt == 0 {
                self.free.remove(id);
            }
            block.ref_cnt += 1;
        }
    }

    /// Drops one reference on each block, in the order given; a block whose count reaches zero is
    /// appended to the free list, so the first ones given are evicted first.
    pub(crate) fn release(&mut self, ids: impl Iterator<Item = BlockId>) {
        for id in ids {
            let Some(block) = self.blocks.get_mut(id as usize) else {
                continue;
            };
            if id == NULL_BLOCK_ID || block.ref_cnt == 0 {
                debug_assert!(false, "releasing unheld block {id}");
                continue;
            }
            block.ref_cnt -= 1;
            if block.ref_cnt == 0 {
                self.free.push_back(id);
            }
        }
    }

    /// Finds a cached block with exactly this content. `parent` is the block that holds the
    /// previous block of the same prefix (as matched), `None` for the first block.
    pub(crate) fn lookup(
        &self,
        hash: BlockHash,
        tokens: &[TokenId],
        parent: Option<BlockRef>,
        extra: ExtraDigest,
    ) -> Lookup {
        let Some(&id) = self.cached.get(&hash) else {
            return Lookup::Miss;
        };
        let block = &self.blocks[id as usize];
        let Some(meta) = block.cached else {
            return Lookup::Mismatch; // unreachable while the table is consistent
        };
        let same = meta.hash == hash
            && meta.extra == extra
            && meta.parent == parent
            && self.block_tokens(id) == tokens;
        if same {
            Lookup::Hit(BlockRef {
                id,
                generation: block.generation,
            })
        } else {
            Lookup::Mismatch
        }
    }

    /// Registers a held, uncached block under `hash`. Returns false (and changes nothing) if the
    /// hash is already taken or the block cannot be registered.
    pub(crate) fn register(
        &mut self,
        id: BlockId,
        hash: BlockHash,
        tokens: &[TokenId],
        parent: Option<BlockRef>,
        extra: ExtraDigest,
    ) -> bool {
        let i = id as usize;
        let ok = id != NULL_BLOCK_ID
            && i < self.blocks.len()
            && self.blocks[i].cached.is_none()
            && tokens.len() == self.block_size
            && !self.tokens.is_empty()
            && !self.cached.contains_key(&hash);
        if !ok {
            return false;
        }
        self.cached.insert(hash, id);
        self.blocks[i].cached = Some(CachedMeta {
            hash,
            parent,
            extra,
        });
        let start = i * self.block_size;
        self.tokens[start..start + self.block_size].copy_from_slice(tokens);
        true
    }

    /// Drops every cached block. Refused (returns false) while any block is held, since held
    /// blocks would otherwise be re-registered by their requests with stale contents.
    pub(crate) fn reset_prefix_cache(&mut self) -> bool {
        if self.free.len() != self.num_usable_blocks() {
            return false;
        }
        for id in 1..self.blocks.len() as BlockId {
            self.evict(id);
        }
        self.cached.clear();
        true
    }

    fn block_tokens(&self, id: BlockId) -> &[TokenId] {
        let start = id as usize * self.block_size;
        self.tokens
            .get(start..start + self.block_size)
            .unwrap_or(&[])
    }

    fn evict(&mut self, id: BlockId) {
        let block = &mut self.blocks[id as usize];
        if let Some(meta) = block.cached.take() {
            if self.cached.get(&meta.hash) == Some(&id) {
                self.cached.remove(&meta.hash);
            }
            block.generation = block.generation.wrapping_add(1);
        }
    }

    /// Checks the invariants above; used by the tests.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        let mut on_list = vec![false; self.blocks.len()];
        for id in self.free.iter() {
            let i = id as usize;
            if on_list[i] {
                return Err(format!("block {id} twice on the free list"));
            }
            on_list[i] = true;
        }
        for (i, b) in self.blocks.iter().enumerate().skip(1) {
            if (b.ref_cnt == 0) != on_list[i] {
                return Err(format!("block {i}: ref_cnt {} vs free list", b.ref_cnt));
            }
            if let Some(meta) = b.cached {
                if self.cached.get(&meta.hash) != Some(&(i as BlockId)) {
                    return Err(format!(
                        "block {i} carries a hash the table does not map to it"
                    ));
                }
            }
        }
        if on_list[0] || self.blocks[0].ref_cnt != 0 || self.blocks[0].cached.is_some() {
            return Err("null block in use".into());
        }
        for (h, &id) in &self.cached {
            if self.block_hash(id) != Some(*h) {
                return Err(format!(
                    "table maps {h:?} to block {id}, which does not carry it"
                ));
            }
        }
        Ok(())
    }
}
