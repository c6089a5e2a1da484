//! `config.json` and `generation_config.json` with the field names transformers writes.
//!
//! Fields are struct members in alphabetical order (as transformers sorts them); family-only
//! fields are `Option` and skipped for the other families, so each file looks like the real
//! family's: Qwen2 has no `attention_bias` (its q/k/v biases are implied by the architecture),
//! Qwen3 always has `head_dim`, Llama has `rope_scaling` and `pretraining_tp`.

use serde::Serialize;

use crate::spec::{Arch, TestModelSpec};

/// Token ids the configs refer to; they come from the tokenizer that is written alongside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: u32,
    /// End-of-sequence ids, the model's primary one first.
    pub eos: Vec<u32>,
    pub pad: Option<u32>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

#[derive(Serialize)]
struct RopeScalingJson {
    factor: f64,
    high_freq_factor: f64,
    low_freq_factor: f64,
    original_max_position_embeddings: usize,
    rope_type: &'static str,
}

#[derive(Serialize)]
struct ConfigJson {
    architectures: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    attention_bias: Option<bool>,
    attention_dropout: f64,
    bos_token_id: u32,
    eos_token_id: OneOrMany,
    #[serde(skip_serializing_if = "Option::is_none")]
    head_dim: Option<usize>,
    hidden_act: &'static str,
    hidden_size: usize,
    initializer_range: f64,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_window_layers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mlp_bias: Option<bool>,
    model_type: &'static str,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    num_key_value_heads: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pretraining_tp: Option<usize>,
    rms_norm_eps: f64,
    rope_scaling: Option<RopeScalingJson>,
    rope_theta: f64,
    /// Outer `None`: field absent (Llama); `Some(None)`: `null` (Qwen3).
    #[serde(skip_serializing_if = "Option::is_none")]
    sliding_window: Option<Option<usize>>,
    tie_word_embeddings: bool,
    torch_dtype: &'static str,
    transformers_version: &'static str,
    use_cache: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    use_sliding_window: Option<bool>,
    vocab_size: usize,
}

/// The text of `config.json`.
pub fn config_json(spec: &TestModelSpec, ids: &SpecialIds) -> serde_json::Result<String> {
    let llama = spec.arch == Arch::Llama;
    let qwen = !llama;
    let (architecture, model_type) = match spec.arch {
        Arch::Llama => ("LlamaForCausalLM", "llama"),
        Arch::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
        Arch::Qwen3 => ("Qwen3ForCausalLM", "qwen3"),
    };
    let eos_token_id = match (spec.arch, ids.eos.as_slice()) {
        // Llama-3 lists every end token in config.json; Qwen names the chat end token only.
        (Arch::Llama, many) if many.len() > 1 => OneOrMany::Many(many.to_vec()),
        (_, [first, ..]) => OneOrMany::One(*first),
        (_, []) => OneOrMany::One(ids.bos),
    };
    let config = ConfigJson {
        architectures: [architecture],
        attention_bias: (spec.arch != Arch::Qwen2).then_some(false),
        attention_dropout: 0.0,
        bos_token_id: ids.bos,
        eos_token_id,
        head_dim: spec.head_dim,
        hidden_act: "silu",
        hidden_size: spec.hidden_size,
        initializer_range: 0.02,
        intermediate_size: spec.intermediate_size,
        max_position_embeddings: spec.max_position_embeddings,
        max_window_layers: qwen.then_some(spec.num_hidden_layers),
        mlp_bias: llama.then_some(false),
        model_type,
        num_attention_heads: spec.num_attention_heads,
        num_hidden_layers: spec.num_hidden_layers,
        num_key_value_heads: spec.num_key_value_heads,
        pretraining_tp: llama.then_some(1),
        rms_norm_eps: spec.rms_norm_eps,
        rope_scaling: spec.rope_scaling.map(|s| RopeScalingJson {
            factor: s.factor,
            high_freq_factor: s.high_freq_factor,
            low_freq_factor: s.low_freq_factor,
            original_max_position_embeddings: s.original_max_position_embeddings,
            rope_type: "llama3",
        }),
        rope_theta: spec.rope_theta,
        sliding_window: match spec.arch {
            Arch::Llama => None,
            Arch::Qwen2 => Some(Some(spec.max_position_embeddings)),
            Arch::Qwen3 => Some(None),
        },
        tie_word_embeddings: spec.tie_word_embeddings,
        torch_dtype: spec.dtype.torch_name(),
        transformers_version: "4.51.0",
        use_cache: true,
        use_sliding_window: qwen.then_some(false),
        vocab_size: spec.vocab_size,
    };
    Ok(serde_json::to_string_pretty(&config)? + "\n")
}

#[derive(Serialize)]
struct GenerationConfigJson {
    bos_token_id: u32,
    do_sample: bool,
    eos_token_id: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pad_token_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repetition_penalty: Option<f64>,
    temperature: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    top_p: f64,
    transformers_version: &'static str,
}

/// The text of `generation_config.json`, with each family's published sampling defaults so
/// that code reading default sampling parameters from it has something real to read.
pub fn generation_config_json(
    spec: &TestModelSpec,
    ids: &SpecialIds,
) -> serde_json::Result<String> {
    let (temperature, top_p, top_k, repetition_penalty) = match spec.arch {
        Arch::Llama => (0.6, 0.9, None, None),
        Arch::Qwen2 => (0.7, 0.8, Some(20), Some(1.05)),
        Arch::Qwen3 => (0.6, 0.95, Some(20), None),
    };
    let config = GenerationConfigJson {
        bos_token_id: ids.bos,
        do_sample: true,
        eos_token_id: ids.eos.clone(),
        pad_token_id: ids.pad,
        repetition_penalty,
        temperature,
        top_k,
        top_p,
        transformers_version: "4.51.0",
    };
    Ok(serde_json::to_string_pretty(&config)? + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::{tiny_llama, tiny_qwen2, tiny_qwen3};

    fn ids() -> SpecialIds {
        SpecialIds {
            bos: 1,
            eos: vec![2, 3],
            pad: None,
        }
    }

    fn parse(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn llama_config_has_llama3_rope_scaling() {
        let c = parse(&config_json(&tiny_llama(), &ids()).unwrap());
        assert_eq!(c["architectures"][0], "LlamaForCausalLM");
        assert_eq!(c["rope_scaling"]["rope_type"], "llama3");
        assert_eq!(c["rope_scaling"]["factor"], 8.0);
        assert_eq!(c["rope_scaling"]["original_max_position_embeddings"], 8192);
        assert_eq!(c["eos_token_id"], serde_json::json!([2, 3]));
        assert!(c.get("head_dim").is_none());
    }

    #[test]
    fn qwen2_config_has_no_attention_bias_field() {
        let c = parse(&config_json(&tiny_qwen2(), &ids()).unwrap());
        assert_eq!(c["model_type"], "qwen2");
        assert!(c.get("attention_bias").is_none());
        assert_eq!(c["tie_word_embeddings"], true);
        assert_eq!(c["eos_token_id"], 2);
    }

    #[test]
    fn qwen3_config_has_head_dim_and_null_scaling() {
        let c = parse(&config_json(&tiny_qwen3(), &ids()).unwrap());
        assert_eq!(c["head_dim"], 32);
        assert!(c["rope_scaling"].is_null());
        assert!(c["sliding_window"].is_null());
        assert_eq!(c["attention_bias"], false);
    }
}
