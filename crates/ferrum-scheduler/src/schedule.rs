//! `schedule()`: one step's plan under one token budget (vLLM v1's phase-free scheduler).
//!
//! Every request has `num_computed_tokens` and `num_tokens()`; a step hands out tokens so that
//! computed catches up with total, within `max_num_batched_tokens` tokens and `max_num_seqs`
//! requests. Prefill, chunked prefill, decode, prefix hits and recompute after preemption are all
//! the same rule. Running requests are served first (schedule_running.rs), then waiting ones are
//! admitted while budget, sequence slots and blocks last (schedule_waiting.rs). If the running
//! pass had to preempt, nothing is admitted in the same step: memory is short.

use crate::{Scheduler, SchedulerOutput};

impl Scheduler {
    /// Plans the next step. Never fails: a request that cannot get blocks waits or is preempted.
    pub fn schedule(&mut self) -> SchedulerOutput {
        let mut out = SchedulerOutput {
            finished_req_ids: std::mem::take(&mut self.finished_req_ids),
            ..SchedulerOutput::default()
        };
        out.num_scheduled_tokens.reserve(self.running.len());
        let mut budget = self.config.max_num_batched_tokens;
        self.schedule_running(&mut budget, &mut out);
        if out.preempted_req_ids.is_empty() {
            self.schedule_waiting(&mut budget, &mut out);
        }
        out.total_num_scheduled_tokens = self.config.max_num_batched_tokens - budget;
        out
    }

    /// How many of `remaining` tokens a request may take this step.
    pub(crate) fn tokens_this_step(&self, remaining: usize, budget: usize) -> usize {
        let capped = match self.config.long_prefill_token_threshold {
            Some(t) => remaining.min(t),
            None => remaining,
        };
        capped.min(budget)
    }
}
