//! Qwen3: RMSNorm over each query and key head before rotary, explicit `head_dim`, no q/k/v
//! biases unless `attention_bias`.

use crate::config::{Architecture, HfConfig, ModelConfig};
use crate::error::Result;

pub fn config(hf: &HfConfig) -> Result<ModelConfig> {
    let bias = hf.attention_bias.unwrap_or(false);
    ModelConfig::from_hf_common(hf, Architecture::Qwen3, bias, true, false)
}
