//! What crosses the scheduler's boundary each step: `SchedulerOutput` to the executor (new
//! requests in full, running ones as diffs against the executor's persistent batch),
//! `ModelRunnerOutput` back, and `EngineCoreOutput` per request to the engine's clients.

use ferrum_kv::BlockId;
use ferrum_types::{FinishReason, SamplingParams, TokenId};

use crate::RequestId;

/// A map keyed by request id. Its hasher (foldhash, seeded per process) is several times faster
/// than SipHash on request-id strings; the scheduler does a few lookups per request per step.
pub type RequestMap<V> = std::collections::HashMap<RequestId, V, foldhash::fast::RandomState>;

/// A request the executor has not seen (first scheduling).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequestData {
    pub req_id: RequestId,
    pub prompt_token_ids: Vec<TokenId>,
    pub sampling_params: SamplingParams,
    /// The whole block table.
    pub block_ids: Vec<BlockId>,
    /// Tokens already in the KV cache (prefix-cache hit); computing starts there.
    pub num_computed_tokens: usize,
}

/// Requests the executor already knows, as diffs. Index `i` of every field describes
/// `req_ids[i]` (vLLM's layout: one allocation per field, not per request).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CachedRequestData {
    pub req_ids: Vec<RequestId>,
    /// The request was preempted earlier and runs again from `num_computed_tokens`: the executor
    /// replaces its block table by `new_block_ids` and its outputs by `new_token_ids`.
    pub resumed_from_preemption: Vec<bool>,
    /// For a resumed request, all its output tokens so far; otherwise empty (the executor holds
    /// the tokens it sampled itself).
    pub new_token_ids: Vec<Vec<TokenId>>,
    /// Blocks appended to the table this step (the whole table for a resumed request).
    pub new_block_ids: Vec<Vec<BlockId>>,
    /// Computed tokens before this step.
    pub num_computed_tokens: Vec<usize>,
}

impl CachedRequestData {
    pub fn len(&self) -> usize {
        self.req_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.req_ids.is_empty()
    }

    pub(crate) fn push(
        &mut self,
        req_id: RequestId,
        resumed: bool,
        new_token_ids: Vec<TokenId>,
        new_block_ids: Vec<BlockId>,
        num_computed_tokens: usize,
    ) {
        self.req_ids.push(req_id);
        self.resumed_from_preemption.push(resumed);
        self.new_token_ids.push(new_token_ids);
        self.new_block_ids.push(new_block_ids);
        self.num_computed_tokens.push(num_computed_tokens);
    }
}

/// One step's plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulerOutput {
    pub scheduled_new_reqs: Vec<NewRequestData>,
    pub scheduled_cached_reqs: CachedRequestData,
    /// Tokens to compute this step, per scheduled request.
    pub num_scheduled_tokens: RequestMap<usize>,
    pub total_num_scheduled_tokens: usize,
    /// Requests that finished or were aborted since the previous step: the executor drops them.
    pub finished_req_ids: Vec<RequestId>,
    /// Requests preempted by this step: the executor drops them from its batch.
    pub preempted_req_ids: Vec<RequestId>,
}

impl SchedulerOutput {
    /// Nothing to run (the executor may skip the forward pass).
    pub fn is_empty(&self) -> bool {
        self.total_num_scheduled_tokens == 0
    }
}

/// Log-probability of one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Logprob {
    pub token_id: TokenId,
    pub logprob: f32,
}

/// Log-probabilities at one sampled position: the sampled token's and the top ones asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprobs {
    pub sampled: Logprob,
    pub top: Vec<Logprob>,
}

/// The executor's answer to one step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelRunnerOutput {
    pub req_ids: Vec<RequestId>,
    /// Per request of `req_ids`: the sampled tokens (empty for a request still in prefill).
    pub sampled_token_ids: Vec<Vec<TokenId>>,
    /// Per request and sampled token, when the request asked for logprobs.
    pub logprobs: Option<Vec<Vec<TokenLogprobs>>>,
}

/// What one request produced in one step, for its client.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineCoreOutput {
    pub request_id: RequestId,
    pub new_token_ids: Vec<TokenId>,
    /// Empty unless logprobs were asked for; otherwise one per new token.
    pub new_logprobs: Vec<TokenLogprobs>,
    pub finish_reason: Option<FinishReason>,
    /// The stop token id that finished the request, if one did.
    pub stop_reason: Option<TokenId>,
    /// Prompt tokens served from the prefix cache (usage reporting).
    pub num_cached_tokens: usize,
}
