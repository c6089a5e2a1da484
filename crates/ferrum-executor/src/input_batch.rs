//! The executor's persistent view of the requests it runs, updated from the scheduler's diffs.
//!
//! Invariants:
//! - A request enters with its full data once (`scheduled_new_reqs`); afterwards only diffs
//!   arrive (new blocks, `num_computed_tokens`, and all outputs again after a preemption).
//! - `token_ids` is prompt + every token this executor sampled, so a decode step can feed the
//!   last sampled token without the scheduler sending it back.
//! - Finished requests leave in the step that reports them. A preempted request keeps its
//!   state: it comes back as a cached request marked `resumed_from_preemption`, with its whole
//!   new block table and all its outputs.

use std::collections::HashMap;

use ferrum_scheduler::{RequestId, SchedulerOutput};
use ferrum_types::{SamplingParams, TokenId};

use crate::error::{ExecutorError, Result};
use crate::Rng;

/// A token sampled by a deferred step that the host has not read: `token_ids[index]` holds 0
/// until then, and the device holds the value as row `row` of sampling `ticket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placeholder {
    pub index: usize,
    pub row: usize,
    pub ticket: u64,
}

pub(crate) struct CachedRequestState {
    pub prompt_len: usize,
    pub token_ids: Vec<TokenId>,
    pub block_table: Vec<u32>,
    pub num_computed_tokens: usize,
    pub sampling: SamplingParams,
    pub rng: Rng,
    pub placeholder: Option<Placeholder>,
}

/// Requests known to the executor, by id.
#[derive(Default)]
pub(crate) struct InputBatch {
    pub requests: HashMap<RequestId, CachedRequestState>,
    /// Seeds requests that gave none, so a run with `--seed` is reproducible.
    pub engine_rng: Option<Rng>,
}

impl InputBatch {
    fn rng_for(&mut self, sampling: &SamplingParams) -> Rng {
        match (sampling.seed, self.engine_rng.as_mut()) {
            (Some(s), _) => Rng::new(s),
            (None, Some(g)) => Rng::new(g.next_u64()),
            (None, None) => Rng::from_entropy(),
        }
    }

    /// The state of a request the step planned.
    pub fn state_mut(&mut self, id: &RequestId) -> Result<&mut CachedRequestState> {
        self.requests
            .get_mut(id)
            .ok_or_else(|| ExecutorError::InvalidStep(format!("request {id} vanished")))
    }

    /// Applies one step's additions, removals and diffs.
    pub fn update(&mut self, so: &SchedulerOutput) -> Result<()> {
        for id in &so.finished_req_ids {
            self.requests.remove(id);
        }
        for r in &so.scheduled_new_reqs {
            let rng = self.rng_for(&r.sampling_params);
            self.requests.insert(
                r.req_id.clone(),
                CachedRequestState {
                    prompt_len: r.prompt_token_ids.len(),
                    token_ids: r.prompt_token_ids.clone(),
                    block_table: r.block_ids.clone(),
                    num_computed_tokens: r.num_computed_tokens,
                    sampling: r.sampling_params.clone(),
                    rng,
                    placeholder: None,
                },
            );
        }
        let c = &so.scheduled_cached_reqs;
        for i in 0..c.len() {
            let id = &c.req_ids[i];
            let state = self.requests.get_mut(id).ok_or_else(|| {
                ExecutorError::InvalidStep(format!("request {id} is not in the batch"))
            })?;
            if c.resumed_from_preemption[i] {
                state.token_ids.truncate(state.prompt_len);
                state.token_ids.extend_from_slice(&c.new_token_ids[i]);
                state.block_table = c.new_block_ids[i].clone();
                state.placeholder = None;
            } else {
                state.block_table.extend_from_slice(&c.new_block_ids[i]);
            }
            state.num_computed_tokens = c.num_computed_tokens[i];
        }
        Ok(())
    }
}
