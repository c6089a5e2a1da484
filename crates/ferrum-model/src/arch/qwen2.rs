//! Qwen2 / Qwen2.5: biases on the q, k and v projections, none elsewhere.

use crate::config::{Architecture, HfConfig, ModelConfig};
use crate::error::Result;

pub fn config(hf: &HfConfig) -> Result<ModelConfig> {
    ModelConfig::from_hf_common(hf, Architecture::Qwen2, true, false, false)
}
