//! Model families: each file maps its `config.json` to a [`ModelConfig`] with the family's rules.
//! The decoder itself is shared ([`crate::decoder`]); adding a family is one file here.

mod llama;
mod qwen2;
mod qwen3;

use crate::config::{Architecture, HfConfig, ModelConfig};
use crate::error::{ModelError, Result};

/// Architectures this build accepts, as named in `config.json`.
pub const SUPPORTED: &[&str] = &["LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"];

/// Reads the family from `architectures` (or `model_type`) and builds the checked config.
pub fn config_from_hf(hf: &HfConfig) -> Result<ModelConfig> {
    let arch = match hf.architectures.first() {
        Some(a) => a.as_str(),
        None => match hf.model_type.as_deref() {
            Some("llama") => "LlamaForCausalLM",
            Some("qwen2") => "Qwen2ForCausalLM",
            Some("qwen3") => "Qwen3ForCausalLM",
            Some(other) => {
                return Err(ModelError::Unsupported {
                    field: "model_type".into(),
                    value: other.into(),
                    hint: format!("supported architectures: {}", SUPPORTED.join(", ")),
                })
            }
            None => return Err(ModelError::MissingField("architectures")),
        },
    };
    match arch {
        "LlamaForCausalLM" => llama::config(hf),
        "Qwen2ForCausalLM" => qwen2::config(hf),
        "Qwen3ForCausalLM" => qwen3::config(hf),
        other => Err(ModelError::Unsupported {
            field: "architectures".into(),
            value: other.into(),
            hint: format!("supported: {}", SUPPORTED.join(", ")),
        }),
    }
}

pub(crate) fn arch_of(name: &str) -> Option<Architecture> {
    match name {
        "llama" => Some(Architecture::Llama),
        "qwen2" => Some(Architecture::Qwen2),
        "qwen3" => Some(Architecture::Qwen3),
        _ => None,
    }
}
