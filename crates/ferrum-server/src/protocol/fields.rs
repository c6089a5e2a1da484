//! Request fields as clients send them: OpenAI's, plus vLLM's extras.
//!
//! Invariants:
//! - Every field is optional here; required-ness and ranges are checked in `validate`, where a
//!   failure can name the field and the bound. Integers are `i64` so that `-1` is a range error
//!   ("must be at least 1") rather than a type error.
//! - Fields whose meaning needs more than a type (messages, prompt, tools) stay `Value` and are
//!   checked by hand, for precise `param` paths.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

/// `stop`: one string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
    pub continuous_usage_stats: Option<bool>,
}

/// Fields shared by /v1/chat/completions and /v1/completions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SamplingFields {
    pub model: Option<String>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<i64>,
    pub min_p: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub logit_bias: Option<BTreeMap<String, f64>>,
    pub seed: Option<i64>,
    pub max_tokens: Option<i64>,
    pub min_tokens: Option<i64>,
    pub n: Option<i64>,
    pub stop: Option<Stop>,
    pub stop_token_ids: Option<Vec<i64>>,
    pub ignore_eos: Option<bool>,
    pub skip_special_tokens: Option<bool>,
    pub include_stop_str_in_output: Option<bool>,
    pub spaces_between_special_tokens: Option<bool>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub priority: Option<i64>,
    pub cache_salt: Option<String>,
    pub user: Option<String>,
    pub add_special_tokens: Option<bool>,
    pub request_id: Option<String>,
    // Accepted and checked only to refuse values we would otherwise silently ignore.
    pub best_of: Option<i64>,
    pub use_beam_search: Option<bool>,
    pub response_format: Option<Value>,
    pub guided_json: Option<Value>,
    pub guided_regex: Option<Value>,
    pub guided_choice: Option<Value>,
    pub guided_grammar: Option<Value>,
    pub structured_outputs: Option<Value>,
    pub prompt_logprobs: Option<i64>,
    pub allowed_token_ids: Option<Vec<i64>>,
    pub bad_words: Option<Vec<String>>,
    pub truncate_prompt_tokens: Option<i64>,
}

/// /v1/chat/completions only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ChatFields {
    pub messages: Option<Value>,
    pub max_completion_tokens: Option<i64>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<i64>,
    pub tools: Option<Value>,
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    pub chat_template_kwargs: Option<Map<String, Value>>,
    pub add_generation_prompt: Option<bool>,
    pub continue_final_message: Option<bool>,
    pub documents: Option<Value>,
    pub echo: Option<bool>,
    pub chat_template: Option<String>,
    pub reasoning_effort: Option<Value>,
    pub metadata: Option<Value>,
    pub store: Option<bool>,
    pub service_tier: Option<Value>,
    pub modalities: Option<Value>,
}

/// /v1/completions only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CompletionFields {
    pub prompt: Option<Value>,
    pub echo: Option<bool>,
    pub suffix: Option<String>,
    pub logprobs: Option<i64>,
}

/// /tokenize: a prompt, or chat messages rendered through the template.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TokenizeFields {
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub messages: Option<Value>,
    pub tools: Option<Value>,
    pub chat_template_kwargs: Option<Map<String, Value>>,
    pub add_generation_prompt: Option<bool>,
    pub continue_final_message: Option<bool>,
    pub add_special_tokens: Option<bool>,
    pub return_token_strs: Option<bool>,
}

/// /detokenize.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DetokenizeFields {
    pub model: Option<String>,
    pub tokens: Option<Vec<i64>>,
}
