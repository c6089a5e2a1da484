//! A fake executor that keeps its own persistent batch from `SchedulerOutput` diffs (as the real
//! one must) and checks it against the scheduler's truth every step. Its "model" samples a token
//! determined by the request's token history, so a recomputed request produces the same output.

use std::collections::HashMap;

use ferrum_kv::BlockId;
use ferrum_types::TokenId;

use crate::{EngineCoreOutput, ModelRunnerOutput, RequestId, Scheduler, SchedulerOutput};

#[derive(Debug, Default)]
struct CachedState {
    tokens: Vec<TokenId>,
    block_ids: Vec<BlockId>,
    num_computed: usize,
    active: bool,
}

#[derive(Debug, Default)]
pub(crate) struct FakeExecutor {
    reqs: HashMap<RequestId, CachedState>,
    pub(crate) steps: usize,
}

/// The fake model: the next token is a function of the whole history.
pub(crate) fn next_token(history: &[TokenId]) -> TokenId {
    let mut h: u64 = 1469598103934665603;
    for &t in history {
        h = (h ^ u64::from(t)).wrapping_mul(1099511628211);
    }
    100 + (h % 50) as TokenId
}

impl FakeExecutor {
    /// Applies the diffs, checks them, "runs" the step and returns what it sampled.
    pub(crate) fn execute(&mut self, s: &Scheduler, out: &SchedulerOutput) -> ModelRunnerOutput {
        self.steps += 1;
        for id in out.finished_req_ids.iter() {
            self.reqs.remove(id);
        }
        for id in &out.preempted_req_ids {
            if let Some(r) = self.reqs.get_mut(id) {
                r.active = false;
            }
        }
        for new in &out.scheduled_new_reqs {
            assert!(
                !self.reqs.contains_key(&new.req_id),
                "{} is not new",
                new.req_id
            );
            self.reqs.insert(
                new.req_id.clone(),
                CachedState {
                    tokens: new.prompt_token_ids.clone(),
                    block_ids: new.block_ids.clone(),
                    num_computed: new.num_computed_tokens,
                    active: true,
                },
            );
        }
        let c = &out.scheduled_cached_reqs;
        for i in 0..c.len() {
            let r = self
                .reqs
                .get_mut(&c.req_ids[i])
                .expect("cached request is known");
            if c.resumed_from_preemption[i] {
                assert!(!r.active, "{} resumed without preemption", c.req_ids[i]);
                r.tokens.truncate(prompt_len_of(s, &c.req_ids[i]));
                r.tokens.extend_from_slice(&c.new_token_ids[i]);
                r.block_ids = c.new_block_ids[i].clone();
                r.active = true;
            } else {
                assert!(r.active && c.new_token_ids[i].is_empty());
                assert_eq!(r.num_computed, c.num_computed_tokens[i]);
                r.block_ids.extend_from_slice(&c.new_block_ids[i]);
            }
            r.num_computed = c.num_computed_tokens[i];
        }

        let ids = out.scheduled_new_reqs.iter().map(|r| &r.req_id);
        let ids: Vec<RequestId> = ids.chain(&c.req_ids).cloned().collect();
        assert_eq!(ids.len(), out.num_scheduled_tokens.len());
        let total: usize = out.num_scheduled_tokens.values().sum();
        assert_eq!(total, out.total_num_scheduled_tokens);
        assert!(total <= s.config().max_num_batched_tokens);

        let mut runner = ModelRunnerOutput::default();
        for id in ids {
            let n = out.num_scheduled_tokens[&id];
            let r = self.reqs.get_mut(&id).expect("scheduled request is known");
            assert_eq!(
                r.block_ids,
                s.kv_cache().block_table(&id),
                "block table of {id}"
            );
            assert!(n > 0 && r.num_computed + n <= r.tokens.len());
            assert!(r.block_ids.len() * s.config().block_size >= r.num_computed + n);
            r.num_computed += n;
            let sampled = if r.num_computed == r.tokens.len() {
                let t = next_token(&r.tokens);
                r.tokens.push(t);
                vec![t]
            } else {
                Vec::new()
            };
            runner.req_ids.push(id);
            runner.sampled_token_ids.push(sampled);
        }
        runner
    }

    /// One whole step: schedule, execute, update.
    pub(crate) fn step(&mut self, s: &mut Scheduler) -> (SchedulerOutput, Vec<EngineCoreOutput>) {
        let out = s.schedule();
        let runner = self.execute(s, &out);
        let outputs = s.update_from_output(&out, &runner);
        (out, outputs)
    }
}

fn prompt_len_of(s: &Scheduler, id: &str) -> usize {
    s.request(id).map_or(0, |r| r.num_prompt_tokens())
}

/// Runs until nothing is left (or `max_steps`), collecting every request's output tokens.
pub(crate) fn run_to_completion(
    s: &mut Scheduler,
    max_steps: usize,
) -> HashMap<RequestId, (Vec<TokenId>, Option<ferrum_types::FinishReason>)> {
    let mut exec = FakeExecutor::default();
    let mut results: HashMap<RequestId, (Vec<TokenId>, Option<ferrum_types::FinishReason>)> =
        HashMap::new();
    while s.has_unfinished_requests() {
        assert!(
            exec.steps < max_steps,
            "no completion after {max_steps} steps"
        );
        let (_, outputs) = exec.step(s);
        for o in outputs {
            let entry = results.entry(o.request_id.clone()).or_default();
            entry.0.extend(&o.new_token_ids);
            entry.1 = o.finish_reason;
        }
    }
    results
}

/// The output a request produces when it runs alone (the fake model is deterministic).
pub(crate) fn solo_output(prompt: &[TokenId], max_tokens: usize) -> Vec<TokenId> {
    let mut tokens = prompt.to_vec();
    for _ in 0..max_tokens {
        tokens.push(next_token(&tokens));
    }
    tokens.split_off(prompt.len())
}
