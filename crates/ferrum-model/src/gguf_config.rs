//! A [`ModelConfig`] and a tokenizer vocabulary from GGUF metadata (`{arch}.*` and
//! `tokenizer.ggml.*` keys), so a single `.gguf` file is a whole model.

use ferrum_backend::RopeStyle;
use ferrum_tokenizer::GgufVocab;

use crate::arch::{arch_of, SUPPORTED};
use crate::config::{ModelConfig, RopeAngles, RopeScaling};
use crate::error::{ModelError, Result};
use crate::weights::{GgufMetadata, WeightSource};

fn file_type_name(ft: u32) -> &'static str {
    match ft {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => "mixed",
    }
}

fn tensor_f32(src: &dyn WeightSource, name: &str) -> Result<Option<Vec<f32>>> {
    if !src.contains(name) {
        return Ok(None);
    }
    let t = src.tensor(name)?;
    Ok(Some(t.to_f32_dense()?))
}

/// Builds the config of the model in a GGUF file.
pub fn config_from_gguf(md: &GgufMetadata, src: &dyn WeightSource) -> Result<ModelConfig> {
    let arch_name = md.architecture()?.to_string();
    let architecture = arch_of(&arch_name).ok_or_else(|| ModelError::Unsupported {
        field: "general.architecture".into(),
        value: arch_name.clone(),
        hint: format!("supported: llama, qwen2, qwen3 ({})", SUPPORTED.join(", ")),
    })?;
    let key = |k: &str| format!("{arch_name}.{k}");
    let num_heads = md.get_usize(&key("attention.head_count"))?;
    let hidden_size = md.get_usize(&key("embedding_length"))?;
    let head_dim = match md.opt_usize(&key("attention.key_length"))? {
        Some(d) => d,
        None => hidden_size / num_heads.max(1),
    };
    if let Some(rot) = md.opt_usize(&key("rope.dimension_count"))? {
        if rot != head_dim {
            return Err(ModelError::Unsupported {
                field: key("rope.dimension_count"),
                value: rot.to_string(),
                hint: format!("partial rotary embeddings are not supported (head_dim {head_dim})"),
            });
        }
    }
    let vocab_size = match md.opt_usize(&key("vocab_size"))? {
        Some(v) => v,
        None => md.get_str_array("tokenizer.ggml.tokens")?.len(),
    };
    let rope_scaling = match md.opt_str(&key("rope.scaling.type"))? {
        None | Some("none") => None,
        Some("linear") => Some(RopeScaling::Linear(f64::from(
            md.get_f32(&key("rope.scaling.factor"))?,
        ))),
        Some(other) => {
            return Err(ModelError::Unsupported {
                field: key("rope.scaling.type"),
                value: other.into(),
                hint: "supported: none, linear (Llama-3 scaling comes as rope_freqs.weight)".into(),
            })
        }
    };
    let qkv_bias = src.contains("model.layers.0.self_attn.q_proj.bias");
    let cfg = ModelConfig {
        architecture,
        model_type: arch_name.clone(),
        vocab_size,
        hidden_size,
        intermediate_size: md.get_usize(&key("feed_forward_length"))?,
        num_layers: md.get_usize(&key("block_count"))?,
        num_heads,
        num_kv_heads: md
            .opt_usize(&key("attention.head_count_kv"))?
            .unwrap_or(num_heads),
        head_dim,
        rms_norm_eps: md.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
        rope_theta: md.opt_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0),
        rope_scaling,
        // Llama files keep llama.cpp's Q/K row order (see `open_weights`), which pairs adjacent
        // dimensions; the other architectures are stored in Hugging Face order.
        rope_style: if arch_name == "llama" {
            RopeStyle::Interleaved
        } else {
            RopeStyle::Neox
        },
        rope_angles: RopeAngles::LlamaCpp,
        rope_freq_factors: tensor_f32(src, "rope_freqs.weight")?,
        max_position_embeddings: md.get_usize(&key("context_length"))?,
        tie_word_embeddings: !src.contains("lm_head.weight"),
        qkv_bias,
        qk_norm: src.contains("model.layers.0.self_attn.q_norm.weight"),
        dtype: md
            .opt_u32("general.file_type")?
            .map_or("gguf", file_type_name)
            .to_string(),
        bos_token_id: md.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_token_ids: md
            .opt_u32("tokenizer.ggml.eos_token_id")?
            .into_iter()
            .collect(),
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Copies the `tokenizer.ggml.*` keys into the tokenizer crate's plain-data vocabulary.
pub fn vocab_from_gguf(md: &GgufMetadata) -> Result<GgufVocab> {
    Ok(GgufVocab {
        model: md.get_str("tokenizer.ggml.model")?.to_string(),
        pre: md.opt_str("tokenizer.ggml.pre")?.map(str::to_string),
        tokens: md.get_str_array("tokenizer.ggml.tokens")?.to_vec(),
        scores: md
            .opt_f32_array("tokenizer.ggml.scores")?
            .map(<[f32]>::to_vec),
        token_types: md
            .opt_i32_array("tokenizer.ggml.token_type")?
            .map(<[i32]>::to_vec),
        merges: md
            .opt_str_array("tokenizer.ggml.merges")?
            .map(<[String]>::to_vec),
        bos_token_id: md.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_token_id: md.opt_u32("tokenizer.ggml.eos_token_id")?,
        unknown_token_id: md.opt_u32("tokenizer.ggml.unknown_token_id")?,
        padding_token_id: md.opt_u32("tokenizer.ggml.padding_token_id")?,
        add_bos_token: md.opt_bool("tokenizer.ggml.add_bos_token")?,
        add_eos_token: md.opt_bool("tokenizer.ggml.add_eos_token")?,
        add_space_prefix: md.opt_bool("tokenizer.ggml.add_space_prefix")?,
    })
}
