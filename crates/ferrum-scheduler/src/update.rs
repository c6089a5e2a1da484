//! `update_from_output()`: fold one step's results back into the requests.
//!
//! Order matters: first every scheduled request's `num_computed_tokens` advances and its newly
//! full blocks are registered in the prefix cache (their KV now exists); then sampled tokens are
//! appended and stop conditions checked; finished requests release their blocks at once, so the
//! next `schedule()` can use them. Requests aborted between `schedule()` and here are skipped.

use crate::stop::check_stop;
use crate::{
    EngineCoreOutput, ModelRunnerOutput, RequestId, RequestStatus, Scheduler, SchedulerOutput,
};

impl Scheduler {
    pub fn update_from_output(
        &mut self,
        scheduled: &SchedulerOutput,
        runner: &ModelRunnerOutput,
    ) -> Vec<EngineCoreOutput> {
        // New requests first, then cached ones: a fixed order keeps block registration (and so
        // which of two identical blocks becomes the cached one) deterministic.
        let new_ids = scheduled.scheduled_new_reqs.iter().map(|r| &r.req_id);
        for id in new_ids.chain(&scheduled.scheduled_cached_reqs.req_ids) {
            let Some(&n) = scheduled.num_scheduled_tokens.get(id) else {
                continue;
            };
            self.advance(id, n);
        }

        let mut outputs = Vec::with_capacity(runner.req_ids.len());
        for (i, id) in runner.req_ids.iter().enumerate() {
            let sampled = runner
                .sampled_token_ids
                .get(i)
                .map_or(&[][..], Vec::as_slice);
            let logprobs = runner.logprobs.as_ref().and_then(|l| l.get(i));
            if let Some(output) = self.append_sampled(id, sampled, logprobs) {
                outputs.push(output);
            }
        }
        outputs
    }

    pub(crate) fn advance(&mut self, id: &RequestId, num_scheduled: usize) {
        let Some(req) = self.requests.get_mut(id) else {
            return; // aborted after scheduling
        };
        if req.status() != RequestStatus::Running {
            return;
        }
        let before = req.num_computed_tokens();
        req.advance_computed(num_scheduled);
        // Most decode steps fill no block: skip the KV manager's lookup then.
        let bs = self.config.block_size;
        if req.num_computed_tokens() / bs > before / bs {
            self.kv
                .cache_full_blocks(id, req.all_token_ids(), req.num_computed_tokens());
        }
    }

    fn append_sampled(
        &mut self,
        id: &RequestId,
        sampled: &[ferrum_types::TokenId],
        logprobs: Option<&Vec<crate::TokenLogprobs>>,
    ) -> Option<EngineCoreOutput> {
        let req = self.requests.get_mut(id)?;
        // A request in the middle of its prefill has no token to show, whatever was sampled.
        let caught_up = req.num_computed_tokens() == req.num_tokens();
        if sampled.is_empty() || req.status() != RequestStatus::Running || !caught_up {
            return None;
        }
        let mut new_token_ids = Vec::with_capacity(sampled.len());
        let mut stop = None;
        for &token in sampled {
            req.append_output_token(token);
            new_token_ids.push(token);
            stop = check_stop(req, self.config.max_model_len);
            if stop.is_some() {
                break; // tokens after a stop (speculative decoding) are dropped
            }
        }
        let new_logprobs = logprobs.map_or_else(Vec::new, |l| {
            l.iter().take(new_token_ids.len()).cloned().collect()
        });
        Some(self.report(id, new_token_ids, new_logprobs, stop))
    }

    /// Appends one token whose placeholder was just removed (async scheduling): the request
    /// may have been preempted since it was sampled, and the token still counts.
    pub(crate) fn append_sampled_token(
        &mut self,
        id: &RequestId,
        token: ferrum_types::TokenId,
    ) -> Option<EngineCoreOutput> {
        let req = self.requests.get_mut(id)?;
        req.append_output_token(token);
        let stop = check_stop(req, self.config.max_model_len);
        Some(self.report(id, vec![token], Vec::new(), stop))
    }

    /// The output of a request's new tokens; finishes it when `stop` says so.
    fn report(
        &mut self,
        id: &RequestId,
        new_token_ids: Vec<ferrum_types::TokenId>,
        new_logprobs: Vec<crate::TokenLogprobs>,
        stop: Option<(RequestStatus, Option<ferrum_types::TokenId>)>,
    ) -> EngineCoreOutput {
        let num_cached_tokens = self
            .requests
            .get(id)
            .and_then(|r| r.num_cached_tokens())
            .unwrap_or(0);
        let output = EngineCoreOutput {
            request_id: id.clone(),
            new_token_ids,
            new_logprobs,
            finish_reason: stop.and_then(|(status, _)| status.finish_reason()),
            stop_reason: stop.and_then(|(_, token)| token),
            num_cached_tokens,
        };
        if let Some((status, stop_token)) = stop {
            self.finish_request(id, status, stop_token);
        }
        output
    }
}
