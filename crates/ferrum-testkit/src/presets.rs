//! Named specs: tiny ones for CI (generated in milliseconds) and real shapes for the GPU kit.
//!
//! Every tiny preset exercises one loader path the others do not: llama3 rope scaling + GQA
//! (`tiny_llama`), MHA + untied head (`tiny_llama2`), QKV bias + tied head (`tiny_qwen2`),
//! `head_dim` ≠ hidden/heads + q/k norm (`tiny_qwen3`).

use crate::spec::{Arch, DType, Llama3RopeScaling, TestModelSpec, VocabSource, QWEN_VOCAB_SIZE};

/// Names accepted by [`preset`] and the CLI.
pub const PRESET_NAMES: &[&str] = &[
    "tiny_llama",
    "tiny_llama2",
    "tiny_qwen2",
    "tiny_qwen3",
    "qwen3_4b",
    "llama31_8b",
];

/// Merges of the tiny tokenizer: 256 + 200 + specials stays under the tiny vocab of 512.
const TINY_MERGES: usize = 200;
const TINY_VOCAB: usize = 512;

/// Looks a preset up by name.
pub fn preset(name: &str) -> Option<TestModelSpec> {
    Some(match name {
        "tiny_llama" => tiny_llama(),
        "tiny_llama2" => tiny_llama2(),
        "tiny_qwen2" => tiny_qwen2(),
        "tiny_qwen3" => tiny_qwen3(),
        "qwen3_4b" => qwen3_4b(),
        "llama31_8b" => llama31_8b(),
        _ => return None,
    })
}

/// Llama-3.1 in miniature: GQA 4/2, llama3 rope scaling, untied head.
pub fn tiny_llama() -> TestModelSpec {
    TestModelSpec {
        arch: Arch::Llama,
        vocab_size: TINY_VOCAB,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: None,
        rms_norm_eps: 1e-5,
        rope_theta: 500_000.0,
        rope_scaling: Some(Llama3RopeScaling::llama31()),
        max_position_embeddings: 131_072,
        tie_word_embeddings: false,
        dtype: DType::F32,
        seed: 0,
        shards: 1,
        vocab: VocabSource::Tiny {
            merges: TINY_MERGES,
        },
    }
}

/// Llama-2 in miniature: MHA (kv heads = heads), no rope scaling, theta 10000, untied head.
pub fn tiny_llama2() -> TestModelSpec {
    TestModelSpec {
        intermediate_size: 160,
        num_hidden_layers: 3,
        num_key_value_heads: 4,
        rope_theta: 10_000.0,
        rope_scaling: None,
        max_position_embeddings: 4096,
        ..tiny_llama()
    }
}

/// Qwen2.5 in miniature: q/k/v biases, GQA 4/2, tied head.
pub fn tiny_qwen2() -> TestModelSpec {
    TestModelSpec {
        arch: Arch::Qwen2,
        rms_norm_eps: 1e-6,
        rope_theta: 1_000_000.0,
        rope_scaling: None,
        max_position_embeddings: 32_768,
        tie_word_embeddings: true,
        ..tiny_llama()
    }
}

/// Qwen3 in miniature: head_dim 32 with hidden 64 and 4 heads (q_proj is 128×64), q/k norm.
pub fn tiny_qwen3() -> TestModelSpec {
    TestModelSpec {
        arch: Arch::Qwen3,
        head_dim: Some(32),
        max_position_embeddings: 40_960,
        ..tiny_qwen2()
    }
}

/// Qwen3-4B's shapes (about 4.0 B parameters, 8 GB in bf16). Never generated in CI.
pub fn qwen3_4b() -> TestModelSpec {
    TestModelSpec {
        arch: Arch::Qwen3,
        vocab_size: QWEN_VOCAB_SIZE,
        hidden_size: 2560,
        intermediate_size: 9728,
        num_hidden_layers: 36,
        num_attention_heads: 32,
        num_key_value_heads: 8,
        head_dim: Some(128),
        rms_norm_eps: 1e-6,
        rope_theta: 1_000_000.0,
        rope_scaling: None,
        max_position_embeddings: 40_960,
        tie_word_embeddings: true,
        dtype: DType::BF16,
        seed: 0,
        shards: 3,
        vocab: VocabSource::Tiny {
            merges: TINY_MERGES,
        },
    }
}

/// Llama-3.1-8B's shapes (about 8.0 B parameters, 16 GB in bf16). Never generated in CI.
pub fn llama31_8b() -> TestModelSpec {
    TestModelSpec {
        arch: Arch::Llama,
        vocab_size: 128_256,
        hidden_size: 4096,
        intermediate_size: 14_336,
        num_hidden_layers: 32,
        num_attention_heads: 32,
        num_key_value_heads: 8,
        head_dim: None,
        rms_norm_eps: 1e-5,
        rope_theta: 500_000.0,
        rope_scaling: Some(Llama3RopeScaling::llama31()),
        max_position_embeddings: 131_072,
        tie_word_embeddings: false,
        dtype: DType::BF16,
        seed: 0,
        shards: 4,
        vocab: VocabSource::Tiny {
            merges: TINY_MERGES,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_preset_exists_and_validates() {
        for name in PRESET_NAMES {
            let spec = preset(name).unwrap_or_else(|| panic!("{name} missing"));
            spec.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(preset("nope").is_none());
    }

    #[test]
    fn tiny_qwen3_head_dim_differs_from_hidden_over_heads() {
        let s = tiny_qwen3();
        assert_ne!(s.head_dim(), s.hidden_size / s.num_attention_heads);
    }
}
