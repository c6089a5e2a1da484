//! Paged KV-cache bookkeeping: which block of the device's KV pool holds which tokens of which
//! request, and which full blocks can be shared through the prefix cache.
//!
//! Invariants of the crate:
//! - no tensors here: block ids and token ids only, so tests assert exact states in milliseconds;
//! - one owner: the engine thread owns the `KvCacheManager` (no locks inside);
//! - running out of blocks is an answer (`None`), not an error: the scheduler preempts;
//! - a prefix-cache hit is exact: cached blocks are matched by a keyed 128-bit chained hash and
//!   then verified token by token (see `prefix.rs`).
//!
//! Layout: `free_list` (intrusive LRU list) → `pool` (blocks, ref counts, hash table) →
//! `manager` (block tables, allocation) + `prefix` (lookup and registration); `hash` computes
//! the chained block hashes.

mod block;
mod error;
mod free_list;
mod hash;
mod manager;
mod pool;
mod prefix;
mod request_blocks;
mod stats;

#[cfg(test)]
mod tests;

pub use block::{BlockId, NULL_BLOCK_ID};
pub use error::KvCacheError;
pub use hash::{BlockHash, BlockHasher, ExtraKeys};
pub use manager::{ComputedBlocks, KvCacheConfig, KvCacheManager, NewBlocks};
pub use pool::BlockPool;
pub use stats::PrefixCacheStats;
