//! What crosses the engine boundary: token ids and sampling parameters in, token ids and finish
//! reasons out. No text, no JSON.

use std::time::Instant;

use crate::{FinishReason, SamplingParams, TokenId};

/// A request as the engine sees it (already tokenized and validated).
#[derive(Debug, Clone)]
pub struct EngineRequest {
    /// Unique per engine; the server derives it from its HTTP request id (and the choice
    /// index when `n > 1` fans out into several engine requests).
    pub request_id: String,
    pub prompt_token_ids: Vec<TokenId>,
    pub sampling: SamplingParams,
    /// Lower runs first under `--scheduling-policy priority`.
    pub priority: i32,
    /// Mixed into the prefix-cache hashes so tenants can keep caches apart.
    pub cache_salt: Option<String>,
    pub arrival_time: Instant,
}

impl EngineRequest {
    pub fn new(
        request_id: impl Into<String>,
        prompt_token_ids: Vec<TokenId>,
        sampling: SamplingParams,
    ) -> Self {
        Self {
            request_id: request_id.into(),
            prompt_token_ids,
            sampling,
            priority: 0,
            cache_salt: None,
            arrival_time: Instant::now(),
        }
    }
}

/// Log-probabilities of one generated token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprobs {
    pub token_id: TokenId,
    pub logprob: f32,
    /// `(token, logprob)`, most likely first, `top_logprobs` long.
    pub top: Vec<(TokenId, f32)>,
}

/// Incremental output of one request after an engine step.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOutput {
    pub request_id: String,
    pub new_token_ids: Vec<TokenId>,
    /// One entry per new token when the request asked for logprobs.
    pub new_logprobs: Vec<TokenLogprobs>,
    /// Set on the request's last output.
    pub finish_reason: Option<FinishReason>,
    /// The stop token id that ended the request, when one did.
    pub stop_token_id: Option<TokenId>,
    pub num_prompt_tokens: usize,
    /// Prompt tokens served from the prefix cache.
    pub num_cached_tokens: usize,
    /// Engine-side error text when `finish_reason` is `Error`.
    pub error: Option<String>,
}

/// A snapshot of the engine's load, for metrics and health.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    pub num_running: usize,
    pub num_waiting: usize,
    /// Fraction of KV blocks in use, in [0, 1].
    pub kv_cache_usage: f64,
    pub num_preemptions_total: u64,
    pub prefix_cache_queries_total: u64,
    pub prefix_cache_hits_total: u64,
    pub prompt_tokens_total: u64,
    pub generation_tokens_total: u64,
    pub num_gpu_blocks: usize,
    pub block_size: usize,
}
