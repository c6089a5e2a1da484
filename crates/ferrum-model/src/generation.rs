//! `generation_config.json`: the model author's sampling defaults, applied where a request
//! leaves a field out.

use std::path::Path;

use ferrum_types::SamplingParams;
use serde::Deserialize;
use serde_json::Value;

use crate::config::token_ids;
use crate::error::{ModelError, Result};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GenerationDefaults {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub max_new_tokens: Option<usize>,
    #[serde(default)]
    eos_token_id: Option<Value>,
    #[serde(default)]
    bos_token_id: Option<Value>,
}

impl GenerationDefaults {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn eos_token_ids(&self) -> Vec<u32> {
        token_ids(&self.eos_token_id)
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        token_ids(&self.bos_token_id).first().copied()
    }

    /// Fills the fields of `p` that this file sets (the caller then applies the request's own).
    pub fn apply(&self, mut p: SamplingParams) -> SamplingParams {
        // As vLLM does, `do_sample` is not consulted: only explicit values become defaults.
        if let Some(t) = self.temperature {
            p.temperature = t;
        }
        if let Some(v) = self.top_p {
            p.top_p = v;
        }
        if let Some(v) = self.top_k {
            p.top_k = v;
        }
        if let Some(v) = self.min_p {
            p.min_p = v;
        }
        if let Some(v) = self.repetition_penalty {
            p.repetition_penalty = v;
        }
        p
    }
}
