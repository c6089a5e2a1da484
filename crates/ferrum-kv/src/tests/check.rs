//! Whole-manager invariant check used by every test.

use std::collections::HashMap;

use crate::hash::BlockHash;
use crate::KvCacheManager;

impl KvCacheManager {
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        self.pool.check_invariants()?;
        let mut holders = vec![0u32; self.pool.num_blocks()];
        let mut marks: HashMap<BlockHash, u32> = HashMap::new();
        for (id, state) in &self.requests {
            let mut seen = std::collections::HashSet::new();
            for &b in &state.block_ids {
                if !seen.insert(b) {
                    return Err(format!("{id} holds block {b} twice"));
                }
                holders[b as usize] += 1;
            }
            for &h in state.in_flight_hashes() {
                *marks.entry(h).or_insert(0) += 1;
            }
            if state.num_cached_blocks > state.block_ids.len() && !state.block_ids.is_empty() {
                return Err(format!("{id}: more cached blocks than held"));
            }
        }
        for (b, &n) in holders.iter().enumerate() {
            if self.pool.ref_cnt(b as u32) != n {
                return Err(format!(
                    "block {b}: ref_cnt {} but {n} holders",
                    self.pool.ref_cnt(b as u32)
                ));
            }
        }
        let used = holders.iter().filter(|&&n| n > 0).count();
        if used + self.pool.num_free_blocks() != self.pool.num_usable_blocks() {
            return Err("free + used != total".into());
        }
        let in_flight: HashMap<BlockHash, u32> =
            self.in_flight.iter().map(|(h, n)| (*h, *n)).collect();
        if marks != in_flight {
            return Err(format!(
                "in-flight marks {:?} vs {:?}",
                marks, self.in_flight
            ));
        }
        Ok(())
    }
}
