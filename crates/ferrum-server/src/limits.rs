//! Caps on everything in a request that multiplies work, checked before any tokenization.
//!
//! Why these numbers: `n`, stop strings, `logit_bias` and `top_logprobs` are the amplifiers of
//! past denial-of-service reports against LLM servers (unbounded `n`, hundreds of thousands of
//! stop strings, huge bias maps). Each cap is far above what real clients send: OpenAI documents
//! 4 stop strings and 300 bias entries; Spring AI and the OpenAI SDKs send fewer.

/// Choices per request (`n`).
pub const MAX_N: usize = 16;
/// Stop strings per request.
pub const MAX_STOP_STRINGS: usize = 16;
/// Bytes in one stop string.
pub const MAX_STOP_STRING_BYTES: usize = 1024;
/// Entries of `stop_token_ids`.
pub const MAX_STOP_TOKEN_IDS: usize = 128;
/// Entries of `logit_bias`.
pub const MAX_LOGIT_BIAS: usize = 300;
/// Largest absolute bias (OpenAI's range).
pub const MAX_BIAS_VALUE: f64 = 100.0;
/// Messages in one conversation.
pub const MAX_MESSAGES: usize = 4096;
/// Tools offered in one request.
pub const MAX_TOOLS: usize = 256;
/// Prompts in one /v1/completions request.
pub const MAX_PROMPTS: usize = 64;
/// Bytes of request headers (all together); hyper's own larger limit is the backstop.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Entries of `chat_template_kwargs`.
pub const MAX_TEMPLATE_KWARGS: usize = 32;
/// Length of string identifiers (`cache_salt`, `user`, `request_id`).
pub const MAX_ID_BYTES: usize = 256;
