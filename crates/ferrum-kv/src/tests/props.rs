//! Property tests: random admit / step / run / free / reset sequences, as a scheduler would
//! issue them, under a strong hash and under a 2-bit hash that collides all the time.
//!
//! After every operation: the pool invariants (free + used = total, free list ↔ ref counts, hash
//! table ↔ blocks), ref count = holders, in-flight marks = holders' marks. On every hit: each
//! hit block holds KV computed for exactly the query's prefix (a shadow of what was written).

use proptest::prelude::*;

use super::{manager_with, BS};
use crate::{BlockHasher, BlockId, ExtraKeys, KvCacheManager};

const SLOTS: usize = 6;
const NUM_BLOCKS: usize = 13;
const MAX_TOKENS: usize = 60;

#[derive(Debug, Clone)]
enum Op {
    Admit {
        slot: usize,
        family: usize,
        len: usize,
        chunk: usize,
        ignore_in_flight: bool,
    },
    Step {
        slot: usize,
        chunk: usize,
    },
    /// The model step: every scheduled chunk is computed.
    Run {
        sampled: u32,
    },
    Free {
        slot: usize,
    },
    Reset,
}

#[derive(Debug)]
struct Live {
    id: String,
    tokens: Vec<u32>,
    num_computed: usize,
    scheduled: usize,
}

struct Model {
    m: KvCacheManager,
    slots: Vec<Option<Live>>,
    /// For each block, the full token prefix its KV was computed for (when fully written).
    shadow: Vec<Option<Vec<u32>>>,
    next_id: usize,
}

fn family_prompt(family: usize, len: usize) -> Vec<u32> {
    (0..len)
        .map(|i| ((i * 7 + family * (i / 9)) % 5) as u32)
        .collect()
}

impl Model {
    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Admit {
                slot,
                family,
                len,
                chunk,
                ignore_in_flight,
            } => self.admit(slot, family_prompt(family, len), chunk, ignore_in_flight)?,
            Op::Step { slot, chunk } => self.step(slot, chunk),
            Op::Run { sampled } => self.run(sampled),
            Op::Free { slot } => {
                if let Some(live) = self.slots[slot].take() {
                    self.m.free(&live.id);
                }
            }
            Op::Reset => {
                let idle = self.slots.iter().all(Option::is_none);
                prop_assert_eq!(self.m.reset_prefix_cache(), idle);
            }
        }
        self.m.check_invariants().map_err(TestCaseError::fail)?;
        for live in self.slots.iter().flatten() {
            let table = self.m.block_table(&live.id);
            let slots = live.num_computed + live.scheduled;
            prop_assert_eq!(table.len(), slots.div_ceil(BS));
        }
        Ok(())
    }

    fn admit(
        &mut self,
        slot: usize,
        tokens: Vec<u32>,
        chunk: usize,
        ignore_in_flight: bool,
    ) -> Result<(), TestCaseError> {
        if self.slots[slot].is_some() {
            return Ok(());
        }
        self.next_id += 1;
        let id = format!("r{}", self.next_id);
        let hit = self
            .m
            .get_computed_blocks(&id, &tokens, &ExtraKeys::default());
        prop_assert!(hit.num_computed_tokens < tokens.len());
        for (i, &b) in hit.block_ids.iter().enumerate() {
            let want = &tokens[..(i + 1) * BS];
            prop_assert_eq!(
                self.shadow[b as usize].as_deref(),
                Some(want),
                "block {}",
                b
            );
        }
        if hit.next_block_in_flight && !ignore_in_flight {
            self.m.free(&id); // stays waiting; forget it
            return Ok(());
        }
        let k = chunk.min(tokens.len() - hit.num_computed_tokens);
        let total = hit.num_computed_tokens + k;
        let Some(new) = self.m.allocate_slots(&id, total, Some(&hit)) else {
            self.m.free(&id);
            return Ok(());
        };
        prop_assert_eq!(&new.block_ids[..hit.block_ids.len()], &hit.block_ids[..]);
        self.forget(&new.block_ids[hit.block_ids.len()..]);
        self.slots[slot] = Some(Live {
            id,
            tokens,
            num_computed: hit.num_computed_tokens,
            scheduled: k,
        });
        Ok(())
    }

    fn step(&mut self, slot: usize, chunk: usize) {
        let Some(live) = &mut self.slots[slot] else {
            return;
        };
        if live.scheduled > 0 {
            return;
        }
        let k = chunk.min(live.tokens.len() - live.num_computed);
        match self.m.allocate_slots(&live.id, live.num_computed + k, None) {
            Some(new) => {
                live.scheduled = k;
                let fresh = new.block_ids;
                self.forget(&fresh);
            }
            None => {
                // Preempted.
                let id = live.id.clone();
                self.slots[slot] = None;
                self.m.free(&id);
            }
        }
    }

    fn run(&mut self, sampled: u32) {
        for slot in 0..SLOTS {
            let Some(live) = &mut self.slots[slot] else {
                continue;
            };
            let (old, new) = (live.num_computed, live.num_computed + live.scheduled);
            let table = self.m.block_table(&live.id);
            for (i, &b) in table.iter().enumerate().take(new / BS).skip(old / BS) {
                self.shadow[b as usize] = Some(live.tokens[..(i + 1) * BS].to_vec());
            }
            live.num_computed = new;
            live.scheduled = 0;
            self.m.cache_full_blocks(&live.id, &live.tokens, new);
            if new == live.tokens.len() {
                live.tokens.push(sampled);
                if live.tokens.len() >= MAX_TOKENS {
                    let id = live.id.clone();
                    self.slots[slot] = None;
                    self.m.free(&id);
                }
            }
        }
    }

    /// Freshly allocated blocks are about to be overwritten.
    fn forget(&mut self, fresh: &[BlockId]) {
        for &b in fresh {
            self.shadow[b as usize] = None;
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..SLOTS, 0..3usize, 1..40usize, 1..16usize, any::<bool>()).prop_map(
            |(slot, family, len, chunk, ignore_in_flight)| Op::Admit {
                slot,
                family,
                len,
                chunk,
                ignore_in_flight
            }
        ),
        4 => (0..SLOTS, 1..12usize).prop_map(|(slot, chunk)| Op::Step { slot, chunk }),
        3 => (0..5u32).prop_map(|sampled| Op::Run { sampled }),
        1 => (0..SLOTS).prop_map(|slot| Op::Free { slot }),
        1 => Just(Op::Reset),
    ]
}

fn run_ops(ops: Vec<Op>, hasher: BlockHasher) -> Result<(), TestCaseError> {
    let mut model = Model {
        m: manager_with(NUM_BLOCKS, hasher),
        slots: (0..SLOTS).map(|_| None).collect(),
        shadow: vec![None; NUM_BLOCKS],
        next_id: 0,
    };
    for op in ops {
        model.apply(op)?;
    }
    // Freeing everything returns the pool to idle.
    for slot in 0..SLOTS {
        model.apply(Op::Free { slot })?;
    }
    prop_assert_eq!(model.m.num_free_blocks(), NUM_BLOCKS - 1);
    prop_assert_eq!(model.m.usage(), 0.0);
    prop_assert!(model.m.in_flight.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn invariants_hold_with_a_strong_hash(ops in proptest::collection::vec(op(), 1..150)) {
        run_ops(ops, BlockHasher::with_key(3, 5))?;
    }

    #[test]
    fn collisions_never_give_wrong_blocks(ops in proptest::collection::vec(op(), 1..150)) {
        run_ops(ops, BlockHasher::weak(2))?;
    }
}
