//! The admission pass: waiting requests in key order (new ones and preempted ones alike), each
//! after a prefix-cache lookup.
//!
//! - A request whose next uncached block is being computed by another request this step is
//!   skipped for one step; next step that block is a hit (how `n > 1` siblings share a prompt).
//! - With chunked prefill, a request takes what is left of the budget; without it, a request
//!   that does not fit the remaining budget waits for the next step.
//! - The pass stops at the first request that cannot get blocks: later (smaller) requests may not
//!   pass it, or a large request could starve.

use crate::queue::SchedKey;
use crate::{NewRequestData, RequestStatus, Scheduler, SchedulerOutput};

impl Scheduler {
    pub(crate) fn schedule_waiting(&mut self, budget: &mut usize, out: &mut SchedulerOutput) {
        let mut cursor: Option<SchedKey> = None;
        while *budget > 0 && self.running.len() < self.config.max_num_seqs {
            let Some(entry) = self.waiting.next_after(cursor) else {
                break;
            };
            cursor = Some(entry.key);
            let Some(req) = self.requests.get(&entry.id) else {
                continue;
            };
            // Preempted with a token still on the device (async scheduling): its prefix
            // cannot be looked up until that token is known, next step.
            if req.has_placeholder() {
                continue;
            }
            let computed =
                self.kv
                    .get_computed_blocks(&entry.id, req.all_token_ids(), &req.extra_keys);
            if computed.next_block_in_flight {
                continue;
            }
            let remaining = req.num_tokens() - computed.num_computed_tokens;
            if !self.config.enable_chunked_prefill && remaining > *budget {
                break;
            }
            let num_new = self.tokens_this_step(remaining, *budget);
            let total = computed.num_computed_tokens + num_new;
            let Some(blocks) = self.kv.allocate_slots(&entry.id, total, Some(&computed)) else {
                break;
            };
            let Some(req) = self.requests.get_mut(&entry.id) else {
                continue;
            };
            let resumed = req.status() == RequestStatus::Preempted;
            req.start_running(computed.num_computed_tokens);
            if resumed {
                out.scheduled_cached_reqs.push(
                    entry.id.clone(),
                    true,
                    req.output_token_ids().to_vec(),
                    blocks.block_ids,
                    computed.num_computed_tokens,
                );
            } else {
                out.scheduled_new_reqs.push(NewRequestData {
                    req_id: entry.id.clone(),
                    prompt_token_ids: req.prompt_token_ids().to_vec(),
                    sampling_params: req.sampling_params.clone(),
                    block_ids: blocks.block_ids,
                    num_computed_tokens: computed.num_computed_tokens,
                });
            }
            self.waiting.remove(entry.key);
            out.num_scheduled_tokens.insert(entry.id.clone(), num_new);
            self.running.insert(entry);
            *budget -= num_new;
        }
    }
}
