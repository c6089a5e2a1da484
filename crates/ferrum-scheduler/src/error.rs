//! The one error type of this crate. Messages name the limit and the flag or field to change.
//! "No free blocks" is not an error: it triggers preemption inside `schedule()`.

use ferrum_kv::KvCacheError;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchedulerError {
    #[error("invalid scheduler configuration: {0}")]
    InvalidConfig(String),
    #[error(transparent)]
    KvCache(#[from] KvCacheError),
    #[error("request id {0:?} is already in use")]
    DuplicateRequestId(String),
    #[error("request {0:?} has an empty prompt")]
    EmptyPrompt(String),
    #[error("request {0:?}: max_tokens must be at least 1")]
    ZeroMaxTokens(String),
    #[error(
        "request {request_id:?}: the prompt has {prompt_len} tokens, but max_model_len is \
         {max_model_len} and at least one token must be generated: shorten the prompt or raise \
         --max-model-len"
    )]
    PromptTooLong {
        request_id: String,
        prompt_len: usize,
        max_model_len: usize,
    },
    #[error(
        "request {request_id:?}: its prompt and max_tokens need up to {needed_blocks} KV blocks \
         ({num_tokens} tokens), but the whole KV cache has {available_blocks}: lower max_tokens, \
         shorten the prompt, or give the KV cache more memory"
    )]
    ExceedsKvCapacity {
        request_id: String,
        num_tokens: usize,
        needed_blocks: usize,
        available_blocks: usize,
    },
}
