//! Async scheduling: the engine plans step N+1 while step N runs on the device, before N's
//! sampled tokens are known on the host.
//!
//! - `update_provisional(N)` folds step N in on counts alone: `num_computed_tokens` advances,
//!   full blocks are registered, and each request that sampled gets a placeholder token
//!   ([`PLACEHOLDER_TOKEN`]), so that the next `schedule()` gives it one decode token. Length
//!   limits depend on counts only: a request that reached one finishes here (its blocks and
//!   slot free for the next `schedule()`, as in the one-step loop), and its last token is
//!   reported when it resolves. Nothing else is checked or reported.
//! - `resolve_provisional(N)`, after N's tokens arrive (and after step N+1 was scheduled),
//!   writes each token over its placeholder, checks the stop conditions and reports, as
//!   `update_from_output` does. A request that stopped in N may have been scheduled in N+1:
//!   that step's row for it is computed and dropped, and its blocks are freed here.
//!
//! Invariants: at most one step is provisional at a time, so a request holds at most one
//! placeholder, and it is its last token. A request with a placeholder is not admitted from
//! the waiting queue (its prefix cannot be hashed yet). With only length limits in play the
//! steps planned are exactly those of the one-step loop; a stop token costs one extra row.
//! A registered block never contains a placeholder: blocks are registered up to
//! `num_computed_tokens`, which the placeholder's position reaches only in the step after
//! the one that sampled it, and that step is folded in after the placeholder resolved.

use ferrum_types::TokenId;

use crate::{
    EngineCoreOutput, ModelRunnerOutput, RequestId, RequestStatus, Scheduler, SchedulerOutput,
};

/// The value of a token sampled on the device and not yet read by the host.
pub const PLACEHOLDER_TOKEN: TokenId = TokenId::MAX;

impl Scheduler {
    /// Whether the next step may be planned before the step in flight is resolved: no request
    /// needs the values of its earlier tokens to choose its next one.
    pub fn can_schedule_ahead(&self) -> bool {
        self.requests
            .values()
            .all(|r| !r.sampling_params.needs_token_values())
    }

    /// Folds a step in whose sampled tokens are not known yet (see the module header).
    pub fn update_provisional<'a>(
        &mut self,
        scheduled: &SchedulerOutput,
        sampled: impl IntoIterator<Item = &'a RequestId>,
    ) {
        let new_ids = scheduled.scheduled_new_reqs.iter().map(|r| &r.req_id);
        for id in new_ids.chain(&scheduled.scheduled_cached_reqs.req_ids) {
            let Some(&n) = scheduled.num_scheduled_tokens.get(id) else {
                continue;
            };
            self.advance(id, n);
        }
        for id in sampled {
            let Some(req) = self.requests.get_mut(id) else {
                continue; // aborted after scheduling
            };
            if req.status() != RequestStatus::Running
                || req.num_computed_tokens() != req.num_tokens()
            {
                continue;
            }
            req.append_output_token(PLACEHOLDER_TOKEN);
            if req.at_length_limit(self.config.max_model_len) {
                let num_cached = req.num_cached_tokens().unwrap_or(0);
                self.finish_request(id, RequestStatus::FinishedLength, None);
                self.finished_unreported.insert(id.clone(), num_cached);
            }
        }
    }

    /// Writes a provisional step's tokens over their placeholders, checks stops and reports
    /// (see the module header).
    pub fn resolve_provisional(&mut self, runner: &ModelRunnerOutput) -> Vec<EngineCoreOutput> {
        let mut outputs = Vec::with_capacity(runner.req_ids.len());
        for (i, id) in runner.req_ids.iter().enumerate() {
            let Some(&token) = runner.sampled_token_ids.get(i).and_then(|s| s.first()) else {
                continue;
            };
            let Some(req) = self.requests.get_mut(id) else {
                // Finished at its length limit when the step was folded in: its last token.
                if let Some(num_cached_tokens) = self.finished_unreported.remove(id) {
                    outputs.push(EngineCoreOutput {
                        request_id: id.clone(),
                        new_token_ids: vec![token],
                        new_logprobs: Vec::new(),
                        finish_reason: RequestStatus::FinishedLength.finish_reason(),
                        stop_reason: None,
                        num_cached_tokens,
                    });
                }
                continue; // otherwise finished or aborted since
            };
            if !req.take_placeholder() {
                continue;
            }
            if let Some(output) = self.append_sampled_token(id, token) {
                outputs.push(output);
            }
        }
        outputs
    }
}
