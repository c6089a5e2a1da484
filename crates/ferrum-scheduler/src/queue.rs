//! The waiting and running queues, both kept in scheduling-key order.
//!
//! A request's key is fixed when it is added: `(priority, arrival sequence)` under the priority
//! policy, `(0, arrival sequence)` under FCFS. Keeping both queues in key order is what makes
//! preemption fair: the running queue is scheduled from its front, victims are taken from its
//! back, and a preempted request re-enters the waiting queue at its original place, ahead of
//! everything that arrived after it (see `schedule_running.rs`).

use std::collections::BTreeMap;

use crate::RequestId;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SchedKey {
    pub(crate) priority: i64,
    pub(crate) seq: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: SchedKey,
    pub(crate) id: RequestId,
}

/// Requests not holding blocks: new ones and preempted ones.
#[derive(Debug, Default)]
pub(crate) struct WaitingQueue {
    map: BTreeMap<SchedKey, RequestId>,
}

impl WaitingQueue {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn insert(&mut self, entry: Entry) {
        self.map.insert(entry.key, entry.id);
    }

    pub(crate) fn remove(&mut self, key: SchedKey) -> bool {
        self.map.remove(&key).is_some()
    }

    /// The first entry after `after` (from the front when `None`).
    pub(crate) fn next_after(&self, after: Option<SchedKey>) -> Option<Entry> {
        let mut it = match after {
            None => self.map.range(..),
            Some(k) => self
                .map
                .range((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)),
        };
        it.next().map(|(key, id)| Entry {
            key: *key,
            id: id.clone(),
        })
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = &RequestId> {
        self.map.values()
    }
}

/// Requests holding blocks, best key first.
#[derive(Debug, Default)]
pub(crate) struct RunningQueue {
    entries: Vec<Entry>,
}

impl RunningQueue {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&Entry> {
        self.entries.get(i)
    }

    pub(crate) fn insert(&mut self, entry: Entry) {
        let at = self.entries.partition_point(|e| e.key < entry.key);
        self.entries.insert(at, entry);
    }

    pub(crate) fn remove(&mut self, key: SchedKey) -> bool {
        match self.entries.binary_search_by(|e| e.key.cmp(&key)) {
            Ok(i) => {
                self.entries.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Removes and returns the worst entry (the next preemption victim).
    pub(crate) fn pop_last(&mut self) -> Option<Entry> {
        self.entries.pop()
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = &RequestId> {
        self.entries.iter().map(|e| &e.id)
    }
}
