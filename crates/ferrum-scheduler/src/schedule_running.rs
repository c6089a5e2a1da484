//! The running pass, and the preemption rule.
//!
//! Rule: requests are served in scheduling-key order (FCFS: arrival; priority: priority, then
//! arrival). When `allocate_slots` finds no room for request R, the scheduler preempts the
//! running request with the *worst* key (the back of the running queue), frees its blocks,
//! resets it to recompute from scratch, and retries R. If the worst request is R itself, R is
//! preempted and the pass ends (everything behind R is already gone).
//!
//! Why no request starves and nothing livelocks:
//! - the victim is always at or behind R in the queue, so a request already scheduled this step
//!   is never undone, and the best running request is never a victim while another one runs;
//! - the best running request alone always fits: `add_request` refuses requests whose prompt +
//!   max_tokens exceed the whole cache, and blocks held by nobody are always reclaimable
//!   (cached free blocks are evicted on demand). So it gets its tokens every step and finishes;
//! - a preempted request goes back to the waiting queue at its original key, ahead of every
//!   request that arrived after it, and the FCFS admission pass stops at the first request that
//!   does not fit instead of letting later ones pass it. So each request in turn becomes the
//!   best unfinished one, which then runs to completion.
//!
//! Under the priority policy the same holds in priority order; a stream of higher-priority
//! arrivals can delay a low-priority request indefinitely, which is what that policy means.

use crate::{RequestStatus, Scheduler, SchedulerOutput};

impl Scheduler {
    pub(crate) fn schedule_running(&mut self, budget: &mut usize, out: &mut SchedulerOutput) {
        let mut i = 0;
        while *budget > 0 {
            let Some(entry) = self.running.get(i) else {
                break;
            };
            let id = entry.id.clone();
            let Some(req) = self.requests.get(&id) else {
                i += 1;
                continue;
            };
            let remaining = req.num_tokens() - req.num_computed_tokens();
            let num_new = self.tokens_this_step(remaining, *budget);
            if num_new == 0 {
                i += 1;
                continue;
            }
            let num_computed = req.num_computed_tokens();
            let new_blocks = loop {
                if let Some(blocks) = self.kv.allocate_slots(&id, num_computed + num_new, None) {
                    break Some(blocks);
                }
                let Some(victim) = self.running.pop_last() else {
                    break None;
                };
                self.preempt(victim.id.clone(), out);
                if victim.id == id {
                    break None;
                }
            };
            let Some(new_blocks) = new_blocks else {
                break; // R preempted itself: nothing is left behind it
            };
            out.scheduled_cached_reqs.push(
                id.clone(),
                false,
                Vec::new(),
                new_blocks.block_ids,
                num_computed,
            );
            out.num_scheduled_tokens.insert(id, num_new);
            *budget -= num_new;
            i += 1;
        }
    }

    /// RUNNING → PREEMPTED; the caller has already taken it off the running queue.
    fn preempt(&mut self, id: crate::RequestId, out: &mut SchedulerOutput) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        debug_assert_eq!(req.status(), RequestStatus::Running);
        self.kv.free(&id);
        req.preempt();
        self.num_preemptions_total += 1;
        self.waiting.insert(crate::queue::Entry {
            key: req.key,
            id: id.clone(),
        });
        out.preempted_req_ids.push(id);
    }
}
