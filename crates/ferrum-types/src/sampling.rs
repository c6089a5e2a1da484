//! Sampling parameters and finish reasons as the engine sees them (token ids only, no text).

use std::collections::HashMap;

use crate::TokenId;

/// Per-request sampling parameters. Defaults are those of an OpenAI request that sets nothing
/// (temperature 1, no truncation); model defaults from `generation_config.json` are applied above.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    pub top_p: f32,
    /// 0 or negative disables top-k.
    pub top_k: i32,
    pub min_p: f32,
    pub repetition_penalty: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub logit_bias: HashMap<TokenId, f32>,
    pub seed: Option<u64>,
    pub max_tokens: usize,
    pub min_tokens: usize,
    pub stop_token_ids: Vec<TokenId>,
    pub ignore_eos: bool,
    /// Number of top log-probabilities to return per generated token (None: none).
    pub logprobs: Option<usize>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: HashMap::new(),
            seed: None,
            max_tokens: 16,
            min_tokens: 0,
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            logprobs: None,
        }
    }
}

impl SamplingParams {
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            max_tokens,
            ..Self::default()
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 || self.top_k == 1
    }

    /// Whether choosing the next token needs the values of the tokens before it on the host
    /// (penalties, log-probabilities): such a request cannot be planned a step ahead.
    pub fn needs_token_values(&self) -> bool {
        self.repetition_penalty != 1.0
            || self.presence_penalty != 0.0
            || self.frequency_penalty != 0.0
            || self.logprobs.is_some()
    }
}

/// Why a sequence stopped, with OpenAI's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End-of-sequence token, a stop token id or a stop string.
    Stop,
    /// `max_tokens` or the context length reached.
    Length,
    /// Aborted by the client or by shutdown.
    Abort,
    /// The engine failed while running this request.
    Error,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
            FinishReason::Error => "error",
        }
    }
}
