//! Exact states of prefix-cache hits, sharing, verification and counters.

use super::{admit, compute, free_ids, manager, manager_with, refs};
use crate::{BlockHasher, ExtraKeys};

#[test]
fn full_blocks_are_cached_partial_ones_are_not() {
    let mut m = manager(11);
    let a: Vec<u32> = (0..10).collect();
    admit(&mut m, "a", &a);
    m.cache_full_blocks("a", &a, 7); // only block 1 is full and computed
    assert!(m.pool().block_hash(1).is_some());
    assert_eq!(m.pool().block_hash(2), None);
    compute(&mut m, "a", &a);
    assert!(m.pool().block_hash(2).is_some());
    assert_eq!(m.pool().block_hash(3), None); // 2 of its 4 tokens
    assert_eq!(m.pool().num_cached_blocks(), 2);
    m.check_invariants().expect("invariants");
}

#[test]
fn a_hit_shares_blocks_and_raises_ref_counts() {
    let mut m = manager(11);
    let a: Vec<u32> = (0..10).collect();
    admit(&mut m, "a", &a);
    compute(&mut m, "a", &a);
    let b: Vec<u32> = (0..8).chain([90, 91, 92]).collect();
    let (computed, new) = admit(&mut m, "b", &b);
    assert_eq!(computed.block_ids, [1, 2]);
    assert_eq!(computed.num_computed_tokens, 8);
    assert_eq!(new, Some(vec![1, 2, 4]));
    assert_eq!(refs(&m, &[1, 2, 3, 4]), [2, 2, 1, 1]);
    m.free("a");
    assert_eq!(refs(&m, &[1, 2, 3]), [1, 1, 0]);
    assert_eq!(free_ids(&m), [5, 6, 7, 8, 9, 10, 3]);
    let stats = m.prefix_cache_stats();
    assert_eq!((stats.queries, stats.hits), (10 + 11, 8));
    m.check_invariants().expect("invariants");
}

#[test]
fn a_hit_on_free_blocks_unlinks_them_from_the_middle_of_the_queue() {
    let mut m = manager(11);
    let a: Vec<u32> = (0..10).collect();
    admit(&mut m, "a", &a);
    compute(&mut m, "a", &a);
    m.free("a");
    assert_eq!(free_ids(&m), [4, 5, 6, 7, 8, 9, 10, 3, 2, 1]);
    let (computed, new) = admit(&mut m, "b", &a);
    assert_eq!(computed.block_ids, [1, 2]);
    assert_eq!(new, Some(vec![1, 2, 4]));
    // Block 3 (a's partial tail) was never cached, so b took a fresh block from the head.
    assert_eq!(free_ids(&m), [5, 6, 7, 8, 9, 10, 3]);
    m.check_invariants().expect("invariants");
}

#[test]
fn the_last_token_is_always_computed() {
    let mut m = manager(11);
    let a: Vec<u32> = (0..8).collect(); // exactly two full blocks
    admit(&mut m, "a", &a);
    compute(&mut m, "a", &a);
    let (computed, new) = admit(&mut m, "b", &a);
    assert_eq!(computed.block_ids, [1]); // not [1, 2]: block 2 holds the last token
    assert_eq!(computed.num_computed_tokens, 4);
    assert_eq!(new, Some(vec![1, 3]));
    m.check_invariants().expect("invariants");
}

#[test]
fn extra_keys_split_the_cache() {
    let mut m = manager(11);
    let tokens: Vec<u32> = (0..9).collect();
    let salt = |s: &str| ExtraKeys {
        cache_salt: Some(s.into()),
        adapter_id: None,
    };
    let c = m.get_computed_blocks("a", &tokens, &salt("t1"));
    m.allocate_slots("a", 9, Some(&c));
    compute(&mut m, "a", &tokens);
    assert_eq!(
        m.get_computed_blocks("b", &tokens, &salt("t2"))
            .block_ids
            .len(),
        0
    );
    assert_eq!(
        m.get_computed_blocks("c", &tokens, &ExtraKeys::default())
            .block_ids
            .len(),
        0
    );
    assert_eq!(
        m.get_computed_blocks("d", &tokens, &salt("t1")).block_ids,
        [1, 2]
    );
    let lora = ExtraKeys {
        cache_salt: Some("t1".into()),
        adapter_id: Some(3),
    };
    assert_eq!(
        m.get_computed_blocks("e", &tokens, &lora).block_ids.len(),
        0
    );
}

#[test]
fn siblings_wait_one_step_then_share_the_prompt() {
    let mut m = manager(11);
    let prompt: Vec<u32> = (0..9).collect();
    let (_, new) = admit(&mut m, "s0", &prompt);
    assert_eq!(new, Some(vec![1, 2, 3]));
    // Same step: s0's blocks are being computed, so a sibling is told to wait.
    let c = m.get_computed_blocks("s1", &prompt, &ExtraKeys::default());
    assert!(c.next_block_in_flight);
    assert_eq!(c.block_ids.len(), 0);
    compute(&mut m, "s0", &prompt); // the step ran
    for id in ["s1", "s2"] {
        let (c, new) = admit(&mut m, id, &prompt);
        assert!(!c.next_block_in_flight);
        assert_eq!(c.block_ids, [1, 2]);
        assert_eq!(new.map(|n| n[2]), Some(if id == "s1" { 4 } else { 5 }));
    }
    assert_eq!(refs(&m, &[1, 2, 3, 4, 5]), [3, 3, 1, 1, 1]);
    m.check_invariants().expect("invariants");
    // A preempted (freed) sibling drops its in-flight marks.
    let other: Vec<u32> = (50..59).collect();
    admit(&mut m, "o", &other);
    assert!(
        m.get_computed_blocks("p", &other, &ExtraKeys::default())
            .next_block_in_flight
    );
    m.free("o");
    assert!(
        !m.get_computed_blocks("p", &other, &ExtraKeys::default())
            .next_block_in_flight
    );
    m.check_invariants().expect("invariants");
}

#[test]
fn twins_computed_in_the_same_step_keep_one_cached_copy() {
    let mut m = manager(11);
    let p: Vec<u32> = (0..9).collect();
    admit(&mut m, "a", &p); // 1, 2, 3
    admit(&mut m, "b", &p); // ignores the in-flight hint: 4, 5, 6
    compute(&mut m, "a", &p);
    compute(&mut m, "b", &p);
    assert_eq!(m.pool().num_cached_blocks(), 2);
    assert_eq!(
        (m.pool().block_hash(4), m.pool().block_hash(5)),
        (None, None)
    );
    // b continues the chain through a's blocks: its block 3 (tokens 8..12) registers with
    // parent block 2, so a later request hits 1, 2 and b's block 6.
    let mut b = p.clone();
    b.extend([9, 10, 11, 12]);
    m.allocate_slots("b", 13, None);
    compute(&mut m, "b", &b);
    let (c, _) = admit(&mut m, "c", &b);
    assert_eq!(c.block_ids, [1, 2, 6]);
    m.check_invariants().expect("invariants");
}

#[test]
fn a_hash_collision_never_returns_wrong_blocks() {
    // Every hash is 0: all blocks collide.
    let mut m = manager_with(11, BlockHasher::weak(0));
    let a = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    admit(&mut m, "a", &a);
    compute(&mut m, "a", &a);
    // Block 1 took hash 0; block 2 could not register (hash taken by other content).
    assert_eq!(m.pool().num_cached_blocks(), 1);
    assert_eq!(m.pool().block_hash(2), None);
    let (c, _) = admit(&mut m, "b", &[4, 3, 2, 1, 5, 6, 7, 8, 9]);
    assert_eq!(c.block_ids.len(), 0, "same hash, different tokens: a miss");
    let (c, _) = admit(&mut m, "c", &a);
    assert_eq!(c.block_ids, [1]);
    m.check_invariants().expect("invariants");
}

#[test]
fn a_stale_parent_is_a_miss_even_when_hash_and_tokens_match() {
    // Weak hash of (parent hash, token sum): x = [1,2,3,4] and x' = [4,3,2,1] collide, and so
    // do their children with equal tokens. Only the parent check can tell them apart.
    let mut m = manager_with(11, BlockHasher::weak(8));
    let (x, x2, t) = ([1, 2, 3, 4], [4, 3, 2, 1], [20, 21, 22, 23]);
    let cat = |a: &[u32], b: &[u32], c: &[u32]| -> Vec<u32> { [a, b, c].concat() };
    let a = cat(&x, &[50], &[]);
    let b = cat(&x, &t, &[99]);
    admit(&mut m, "a", &a); // 1, 2
    admit(&mut m, "b", &b); // 3, 4, 5: same step, so no hit on x yet
    compute(&mut m, "a", &a); // block 1 := x
    compute(&mut m, "b", &b); // b's x is a twin of block 1; block 4 := t, parent block 1
    assert_eq!(m.pool().block_hash(3), None);
    assert!(m.pool().block_hash(4).is_some());
    m.free("a");
    assert_eq!(free_ids(&m), [6, 7, 8, 9, 10, 2, 1]);
    admit(&mut m, "e", &[0; 28]); // takes all seven: block 1 loses x
    m.free("e");
    assert_eq!(free_ids(&m), [1, 2, 10, 9, 8, 7, 6]);
    let c = cat(&x2, &[60], &[]);
    let (hit, new) = admit(&mut m, "c", &c);
    assert_eq!((hit.block_ids.len(), new), (0, Some(vec![1, 2])));
    compute(&mut m, "c", &c); // block 1 := x', under the hash x had
                              // x'·t: block 0 is block 1 (x', verified); t's hash then equals block 4's, and its tokens
                              // match, but block 4 follows the *old* contents of block 1: a miss, not wrong KV.
    let (hit, _) = admit(&mut m, "d", &cat(&x2, &t, &[99]));
    assert_eq!(hit.block_ids, [1]);
    // x·t: x is gone from the cache, so nothing at all.
    assert_eq!(
        m.get_computed_blocks("f", &b, &ExtraKeys::default())
            .block_ids
            .len(),
        0
    );
    m.check_invariants().expect("invariants");
}

#[test]
fn reset_is_refused_while_blocks_are_held() {
    let mut m = manager(11);
    let a: Vec<u32> = (0..9).collect();
    admit(&mut m, "a", &a);
    compute(&mut m, "a", &a);
    assert!(!m.reset_prefix_cache());
    m.free("a");
    assert!(m.reset_prefix_cache());
    assert_eq!(m.pool().num_cached_blocks(), 0);
    let (c, _) = admit(&mut m, "b", &a);
    assert_eq!(c.block_ids.len(), 0);
    m.check_invariants().expect("invariants");
}
