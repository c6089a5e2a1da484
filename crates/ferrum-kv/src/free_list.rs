//! Intrusive doubly linked free list over block indices.
//!
//! Invariants:
//! - every linked index appears exactly once, `len` counts them, and `prev`/`next` of linked
//!   indices are mutually consistent (`next[prev[i]] == i`);
//! - order is eviction order: the head is evicted first, freed blocks go to the tail, so the list
//!   is least-recently-freed first (LRU).
//!
//! The links live in two flat vectors indexed by block id instead of in heap nodes, so pop, push
//! and removal from the middle (a prefix-cache hit on a free block) are O(1) with no allocation.

use crate::BlockId;

/// "No neighbour" marker; block ids are always below it (the pool rejects larger pools).
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub(crate) struct FreeList {
    prev: Vec<u32>,
    next: Vec<u32>,
    linked: Vec<bool>,
    head: u32,
    tail: u32,
    len: usize,
}

impl FreeList {
    /// An empty list able to hold indices `0..capacity`.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            prev: vec![NIL; capacity],
            next: vec![NIL; capacity],
            linked: vec![false; capacity],
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, id: BlockId) -> bool {
        self.linked.get(id as usize).copied().unwrap_or(false)
    }

    /// Appends `id` at the tail (evicted last). No-op if already linked.
    pub(crate) fn push_back(&mut self, id: BlockId) {
        let i = id as usize;
        if self.linked[i] {
            return;
        }
        self.linked[i] = true;
        self.prev[i] = self.tail;
        self.next[i] = NIL;
        if self.tail == NIL {
            self.head = id;
        } else {
            self.next[self.tail as usize] = id;
        }
        self.tail = id;
        self.len += 1;
    }

    /// Unlinks and returns the head (the next block to evict).
    pub(crate) fn pop_front(&mut self) -> Option<BlockId> {
        if self.head == NIL {
            return None;
        }
        let id = self.head;
        self.remove(id);
        Some(id)
    }

    /// Unlinks `id` wherever it is. No-op if it is not linked.
    pub(crate) fn remove(&mut self, id: BlockId) {
        let i = id as usize;
        if !self.linked[i] {
            return;
        }
        let (p, n) = (self.prev[i], self.next[i]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
        self.prev[i] = NIL;
        self.next[i] = NIL;
        self.linked[i] = false;
        self.len -= 1;
    }

    /// Linked ids from head (evicted first) to tail.
    pub(crate) fn iter(&self) -> impl Iterator<Item = BlockId> + '_ {
        let mut cur = self.head;
        std::iter::from_fn(move || {
            if cur == NIL {
                return None;
            }
            let id = cur;
            cur = self.next[id as usize];
            Some(id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(l: &FreeList) -> Vec<BlockId> {
        l.iter().collect()
    }

    #[test]
    fn push_pop_remove_keep_order() {
        let mut l = FreeList::with_capacity(6);
        for i in 1..6 {
            l.push_back(i);
        }
        assert_eq!(ids(&l), [1, 2, 3, 4, 5]);
        l.remove(3);
        assert_eq!(ids(&l), [1, 2, 4, 5]);
        l.remove(1);
        l.remove(5);
        assert_eq!(ids(&l), [2, 4]);
        assert_eq!(l.pop_front(), Some(2));
        l.push_back(1);
        l.push_back(1); // idempotent
        assert_eq!(ids(&l), [4, 1]);
        assert_eq!(l.len(), 2);
        assert!(l.contains(4) && !l.contains(2));
        assert_eq!(l.pop_front(), Some(4));
        assert_eq!(l.pop_front(), Some(1));
        assert_eq!(l.pop_front(), None);
        assert_eq!(l.len(), 0);
        l.remove(3); // not linked: no-op
        assert_eq!(ids(&l), Vec::<BlockId>::new());
    }
}
