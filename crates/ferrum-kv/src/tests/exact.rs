//! Exact states of allocation, growth, freeing and eviction (block ids, ref counts, free queue).

use super::{admit, compute, free_ids, manager, refs};
use crate::{ExtraKeys, KvCacheConfig, KvCacheError, KvCacheManager};

#[test]
fn fresh_pool_hands_out_ascending_ids_and_reserves_block_zero() {
    let mut m = manager(11); // blocks 1..=10 usable
    assert_eq!(m.num_usable_blocks(), 10);
    assert_eq!(free_ids(&m), (1..=10).collect::<Vec<_>>());
    let (computed, new) = admit(&mut m, "a", &[1; 10]);
    assert_eq!(computed.num_computed_tokens, 0);
    assert_eq!(new, Some(vec![1, 2, 3]));
    assert_eq!(m.block_table("a"), [1, 2, 3]);
    assert_eq!(refs(&m, &[1, 2, 3]), [1, 1, 1]);
    assert_eq!(free_ids(&m), (4..=10).collect::<Vec<_>>());
    assert!((m.usage() - 0.3).abs() < 1e-12);
    m.check_invariants().expect("invariants");
}

#[test]
fn free_appends_tail_first_and_is_idempotent() {
    let mut m = manager(11);
    admit(&mut m, "a", &[1; 10]);
    m.free("a");
    // Reverse order: a's tail block 3 is evicted before its head block 1.
    assert_eq!(free_ids(&m), [4, 5, 6, 7, 8, 9, 10, 3, 2, 1]);
    assert_eq!(m.block_table("a"), [] as [u32; 0]);
    m.free("a");
    m.free("never-seen");
    assert_eq!(m.num_free_blocks(), 10);
    assert_eq!(m.usage(), 0.0);
    m.check_invariants().expect("invariants");
}

#[test]
fn decode_growth_takes_a_block_only_at_block_boundaries() {
    let mut m = manager(11);
    admit(&mut m, "a", &[1; 4]);
    assert_eq!(m.block_table("a"), [1]);
    let step = |m: &mut KvCacheManager, n| m.allocate_slots("a", n, None).map(|b| b.block_ids);
    assert_eq!(step(&mut m, 5), Some(vec![2]));
    assert_eq!(step(&mut m, 6), Some(vec![]));
    assert_eq!(step(&mut m, 8), Some(vec![]));
    assert_eq!(step(&mut m, 9), Some(vec![3]));
    // Chunked prefill: many blocks at once.
    assert_eq!(step(&mut m, 20), Some(vec![4, 5]));
    assert_eq!(m.block_table("a"), [1, 2, 3, 4, 5]);
    m.check_invariants().expect("invariants");
}

#[test]
fn failed_allocation_changes_nothing() {
    let mut m = manager(6); // 5 usable
    admit(&mut m, "a", &[1; 12]); // 3 blocks
    let before = free_ids(&m);
    let (_, new) = admit(&mut m, "b", &[2; 9]); // needs 3, 2 free
    assert_eq!(new, None);
    assert_eq!(free_ids(&m), before);
    assert_eq!(m.block_table("b"), [] as [u32; 0]);
    assert_eq!(m.allocate_slots("a", 21, None), None); // needs 3 more
    assert_eq!(m.block_table("a"), [1, 2, 3]);
    assert_eq!(free_ids(&m), before);
    m.check_invariants().expect("invariants");
    // Exactly enough succeeds.
    assert!(m.allocate_slots("a", 20, None).is_some());
    assert_eq!(m.num_free_blocks(), 0);
    assert_eq!(m.usage(), 1.0);
}

#[test]
fn lru_eviction_takes_the_head_and_a_freed_requests_tail_first() {
    let mut m = manager(11);
    let a: Vec<u32> = (0..12).collect(); // three full blocks
    admit(&mut m, "a", &a);
    compute(&mut m, "a", &a);
    assert_eq!(m.pool().num_cached_blocks(), 3);
    m.free("a");
    assert_eq!(free_ids(&m), [4, 5, 6, 7, 8, 9, 10, 3, 2, 1]);
    // Eight new blocks: the seven never-used ones, then a's tail block 3 (its hash dropped).
    let (_, new) = admit(&mut m, "x", &[100; 32]);
    assert_eq!(new, Some(vec![4, 5, 6, 7, 8, 9, 10, 3]));
    assert_eq!(m.pool().block_hash(3), None);
    assert_eq!(m.pool().num_cached_blocks(), 2);
    assert_eq!(free_ids(&m), [2, 1]);
    // a's first two blocks are still cached and free: a re-run hits them.
    let (computed, new) = admit(&mut m, "a2", &a);
    assert_eq!(computed.block_ids, [1, 2]);
    assert_eq!(new, None); // needs 1 more block, none left besides the two it revives
    m.free("x");
    let (computed, new) = admit(&mut m, "a2", &a);
    assert_eq!(computed.block_ids, [1, 2]);
    assert_eq!(new, Some(vec![1, 2, 3])); // 3 is x's tail, the head of the free queue
    assert_eq!(free_ids(&m), [10, 9, 8, 7, 6, 5, 4]);
    m.check_invariants().expect("invariants");
}

#[test]
fn cached_free_blocks_count_against_the_free_pool_when_revived() {
    let mut m = manager(5); // 4 usable
    let a: Vec<u32> = (0..9).collect();
    admit(&mut m, "a", &a); // blocks 1, 2, 3
    compute(&mut m, "a", &a);
    m.free("a");
    admit(&mut m, "x", &[9; 4]); // takes block 4, the head; free: 3, 2, 1
                                 // b hits blocks 1 and 2 (both free) and needs 2 new: 2 + 2 > 3 free.
    let (computed, new) = admit(&mut m, "b", &[0, 1, 2, 3, 4, 5, 6, 7, 50, 51, 52, 53, 54]);
    assert_eq!(computed.block_ids, [1, 2]);
    assert_eq!(new, None);
    m.check_invariants().expect("invariants");
}

#[test]
fn prefix_caching_off_never_hashes_or_hits() {
    let config = KvCacheConfig {
        block_size: 4,
        num_blocks: 11,
        enable_prefix_caching: false,
    };
    let mut m = KvCacheManager::new(config).expect("valid config");
    let a: Vec<u32> = (0..9).collect();
    admit(&mut m, "a", &a);
    compute(&mut m, "a", &a);
    assert_eq!(m.pool().num_cached_blocks(), 0);
    let c = m.get_computed_blocks("b", &a, &ExtraKeys::default());
    assert_eq!(c.block_ids, [] as [u32; 0]);
    assert_eq!(m.prefix_cache_stats().queries, 0);
}

#[test]
fn bad_configs_are_refused() {
    let cfg = |block_size, num_blocks| KvCacheConfig {
        block_size,
        num_blocks,
        enable_prefix_caching: true,
    };
    assert_eq!(
        KvCacheManager::new(cfg(0, 10)).err(),
        Some(KvCacheError::ZeroBlockSize)
    );
    assert_eq!(
        KvCacheManager::new(cfg(16, 1)).err(),
        Some(KvCacheError::TooFewBlocks { num_blocks: 1 })
    );
}
