//! What a test model looks like: architecture, shapes, rope, dtype, seed, sharding, vocabulary.
//!
//! A spec is plain data; `validate` rejects shapes the architectures cannot have, naming the
//! field, before anything is written.

use std::path::PathBuf;

use crate::error::{Result, TestkitError};

/// `vocab_size` of Qwen2/Qwen3 checkpoints: the 151,643 BPE tokens and the added tokens,
/// padded to a multiple of 128.
pub const QWEN_VOCAB_SIZE: usize = 151_936;

/// The model family; it decides the config's `architectures`/`model_type`, the tensor set
/// (QKV bias for Qwen2, q/k norm for Qwen3) and the tokenizer's special tokens and template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `LlamaForCausalLM` (Llama-2, Llama-3.x shapes).
    Llama,
    /// `Qwen2ForCausalLM`: biases on q/k/v projections.
    Qwen2,
    /// `Qwen3ForCausalLM`: explicit `head_dim`, per-head RMSNorm on q and k before rotary.
    Qwen3,
}

/// Storage dtype of the safetensors files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    BF16,
    F16,
}

impl DType {
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::BF16 | DType::F16 => 2,
        }
    }

    /// The dtype tag in a safetensors header.
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::BF16 => "BF16",
            DType::F16 => "F16",
        }
    }

    /// The `torch_dtype` value in `config.json`.
    pub fn torch_name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::BF16 => "bfloat16",
            DType::F16 => "float16",
        }
    }

    /// Parses the CLI spelling (`f32`, `bf16`, `f16`, or the torch names).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Some(DType::F32),
            "bf16" | "bfloat16" => Some(DType::BF16),
            "f16" | "float16" => Some(DType::F16),
            _ => None,
        }
    }
}

/// Llama-3's `rope_scaling` with `rope_type: "llama3"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3RopeScaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

impl Llama3RopeScaling {
    /// The values Llama-3.1 ships with.
    pub fn llama31() -> Self {
        Self {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        }
    }
}

/// Where the tokenizer's vocabulary comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum VocabSource {
    /// A small byte-level BPE learned from a built-in text: 256 byte tokens, up to `merges`
    /// merged tokens, then the family's special tokens.
    Tiny { merges: usize },
    /// Qwen's real vocabulary from a `qwen.tiktoken` rank file (see `scripts/fetch-qwen-vocab`).
    QwenTiktoken(PathBuf),
}

/// Everything `write_test_model` needs. Build one from a preset and adjust fields.
#[derive(Debug, Clone, PartialEq)]
pub struct TestModelSpec {
    pub arch: Arch,
    /// Rows of the embedding and LM head; at least the tokenizer's size (the rest is padding,
    /// as in real checkpoints).
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Written to `config.json` when set; `None` means `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3RopeScaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub dtype: DType,
    pub seed: u64,
    /// 1 writes `model.safetensors`; K > 1 writes K shards and an index.
    pub shards: usize,
    pub vocab: VocabSource,
}

impl TestModelSpec {
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn with_shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// Switches to Qwen's real vocabulary, which needs `vocab_size` = [`QWEN_VOCAB_SIZE`].
    pub fn with_qwen_vocab(mut self, tiktoken_path: impl Into<PathBuf>) -> Self {
        self.vocab = VocabSource::QwenTiktoken(tiktoken_path.into());
        self.vocab_size = self.vocab_size.max(QWEN_VOCAB_SIZE);
        self
    }

    /// The per-head dimension the model uses.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn has_qkv_bias(&self) -> bool {
        self.arch == Arch::Qwen2
    }

    pub fn has_qk_norm(&self) -> bool {
        self.arch == Arch::Qwen3
    }

    /// Rejects shapes no checkpoint of the family could have.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(TestkitError::InvalidSpec(msg));
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("max_position_embeddings", self.max_position_embeddings),
            ("shards", self.shards),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return bad(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.head_dim.is_none() && self.hidden_size % self.num_attention_heads != 0 {
            return bad(format!(
                "hidden_size ({}) must be a multiple of num_attention_heads ({}) unless head_dim is set",
                self.hidden_size, self.num_attention_heads
            ));
        }
        let head_dim = self.head_dim();
        if head_dim == 0 || head_dim % 2 != 0 {
            return bad(format!(
                "head_dim ({head_dim}) must be even and positive for rotary"
            ));
        }
        if self.arch == Arch::Qwen3 && self.head_dim.is_none() {
            return bad("Qwen3 configs always carry head_dim: set it".into());
        }
        if self.rope_scaling.is_some() && self.arch != Arch::Llama {
            return bad("rope_scaling (llama3) is only written for Arch::Llama".into());
        }
        if matches!(self.vocab, VocabSource::QwenTiktoken(_)) && self.arch == Arch::Llama {
            return bad("the Qwen vocabulary needs Arch::Qwen2 or Arch::Qwen3".into());
        }
        if !(self.rms_norm_eps > 0.0 && self.rope_theta > 0.0) {
            return bad("rms_norm_eps and rope_theta must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::{tiny_llama, tiny_qwen3};

    #[test]
    fn rejects_kv_heads_that_do_not_divide() {
        let mut s = tiny_llama();
        s.num_key_value_heads = 3;
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("num_key_value_heads"), "{err}");
    }

    #[test]
    fn qwen3_needs_head_dim() {
        let mut s = tiny_qwen3();
        s.head_dim = None;
        assert!(s.validate().is_err());
    }

    #[test]
    fn dtype_parse_round_trips() {
        for d in [DType::F32, DType::BF16, DType::F16] {
            assert_eq!(DType::parse(d.torch_name()), Some(d));
            assert_eq!(DType::parse(&d.safetensors_name().to_lowercase()), Some(d));
        }
    }
}
