//! Llama-2, Llama-3 (with `llama3` rotary scaling) and SmolLM2: no biases unless
//! `attention_bias`, untied head unless `tie_word_embeddings`.

use crate::config::{Architecture, HfConfig, ModelConfig};
use crate::error::Result;

pub fn config(hf: &HfConfig) -> Result<ModelConfig> {
    let bias = hf.attention_bias.unwrap_or(false);
    ModelConfig::from_hf_common(hf, Architecture::Llama, bias, false, false)
}
