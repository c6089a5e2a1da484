//! The tensor set of a spec (Hugging Face names and `[out, in]` shapes) and how each is filled.
//!
//! Scaling, chosen so a forward pass is well conditioned at any depth:
//! - Linear weights: uniform ±sqrt(3 / fan_in), i.e. unit gain: a unit-RMS input gives a unit-RMS
//!   output, so q·k/sqrt(d) has spread ~1 (attention is neither uniform nor one-hot).
//! - Embedding (and LM head): std 2/sqrt(hidden), so logits of a unit-RMS final state have a
//!   std of about 2 across the vocabulary, tied or not.
//! - Norm weights: 1 ± 0.2; biases: ±0.5 (large enough that dropping one shows in the logits).
//! - Embedding/head rows past the tokenizer's last id (vocab padding) are zero, as in real
//!   checkpoints, so their logit is 0 while real tokens' maxima sit near +6: greedy decoding
//!   never picks an id the tokenizer cannot decode.
//!
//! Values are produced as a stream per tensor: splitmix64 seeded by `seed ^ fnv1a64(name)`.

use crate::hash::fnv1a64;
use crate::rng::SplitMix64;
use crate::spec::TestModelSpec;

/// How a tensor's values are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Uniform in [-bound, bound).
    Uniform { bound: f32 },
    /// `1 + uniform in [-noise, noise)`: RMSNorm gains.
    NearOne { noise: f32 },
    /// Uniform in [-bound, bound) for the first `live_rows` rows of a `[rows, cols]` matrix,
    /// zero after: embedding rows for vocabulary padding.
    LiveRows {
        bound: f32,
        live_rows: usize,
        cols: usize,
    },
}

/// One tensor to write.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

impl TensorPlan {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The value stream: deterministic from (seed, name, init) alone.
    pub fn values(&self, seed: u64) -> impl Iterator<Item = f32> {
        let mut rng = SplitMix64::new(seed ^ fnv1a64(self.name.as_bytes()));
        let init = self.init;
        (0..self.numel()).map(move |i| {
            let u = rng.next_symmetric();
            match init {
                Init::Uniform { bound } => u * bound,
                Init::NearOne { noise } => 1.0 + u * noise,
                Init::LiveRows {
                    bound,
                    live_rows,
                    cols,
                } => {
                    if i / cols < live_rows {
                        u * bound
                    } else {
                        0.0
                    }
                }
            }
        })
    }
}

const NORM_NOISE: f32 = 0.2;
const BIAS_BOUND: f32 = 0.5;

fn unit_gain_bound(fan_in: usize) -> f32 {
    (3.0 / fan_in as f64).sqrt() as f32
}

fn embedding_bound(hidden: usize) -> f32 {
    // std 2/sqrt(hidden) for a uniform distribution means bound sqrt(3) * std.
    (12.0 / hidden as f64).sqrt() as f32
}

fn linear(name: String, out: usize, fan_in: usize) -> TensorPlan {
    TensorPlan {
        name,
        shape: vec![out, fan_in],
        init: Init::Uniform {
            bound: unit_gain_bound(fan_in),
        },
    }
}

fn norm(name: String, dim: usize) -> TensorPlan {
    TensorPlan {
        name,
        shape: vec![dim],
        init: Init::NearOne { noise: NORM_NOISE },
    }
}

fn bias(name: String, dim: usize) -> TensorPlan {
    TensorPlan {
        name,
        shape: vec![dim],
        init: Init::Uniform { bound: BIAS_BOUND },
    }
}

/// Every tensor of the checkpoint, in model order (embedding, layers, final norm, head).
/// `live_vocab` is the tokenizer's size: embedding rows from there on are zero.
pub fn plan(spec: &TestModelSpec, live_vocab: usize) -> Vec<TensorPlan> {
    let h = spec.hidden_size;
    let d = spec.head_dim();
    let q_out = spec.num_attention_heads * d;
    let kv_out = spec.num_key_value_heads * d;
    let inter = spec.intermediate_size;
    let embedding = |name: &str| TensorPlan {
        name: name.to_string(),
        shape: vec![spec.vocab_size, h],
        init: Init::LiveRows {
            bound: embedding_bound(h),
            live_rows: live_vocab.min(spec.vocab_size),
            cols: h,
        },
    };

    let mut out = vec![embedding("model.embed_tokens.weight")];
    for l in 0..spec.num_hidden_layers {
        let p = format!("model.layers.{l}");
        out.push(norm(format!("{p}.input_layernorm.weight"), h));
        out.push(linear(format!("{p}.self_attn.q_proj.weight"), q_out, h));
        out.push(linear(format!("{p}.self_attn.k_proj.weight"), kv_out, h));
        out.push(linear(format!("{p}.self_attn.v_proj.weight"), kv_out, h));
        if spec.has_qkv_bias() {
            out.push(bias(format!("{p}.self_attn.q_proj.bias"), q_out));
            out.push(bias(format!("{p}.self_attn.k_proj.bias"), kv_out));
            out.push(bias(format!("{p}.self_attn.v_proj.bias"), kv_out));
        }
        if spec.has_qk_norm() {
            out.push(norm(format!("{p}.self_attn.q_norm.weight"), d));
            out.push(norm(format!("{p}.self_attn.k_norm.weight"), d));
        }
        out.push(linear(format!("{p}.self_attn.o_proj.weight"), h, q_out));
        out.push(norm(format!("{p}.post_attention_layernorm.weight"), h));
        out.push(linear(format!("{p}.mlp.gate_proj.weight"), inter, h));
        out.push(linear(format!("{p}.mlp.up_proj.weight"), inter, h));
        out.push(linear(format!("{p}.mlp.down_proj.weight"), h, inter));
    }
    out.push(norm("model.norm.weight".to_string(), h));
    if !spec.tie_word_embeddings {
        out.push(embedding("lm_head.weight"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::{qwen3_4b, tiny_llama, tiny_qwen2, tiny_qwen3};

    fn names(spec: &TestModelSpec) -> Vec<String> {
        plan(spec, 400).into_iter().map(|t| t.name).collect()
    }

    #[test]
    fn qwen2_has_biases_and_no_lm_head() {
        let n = names(&tiny_qwen2());
        assert!(n.contains(&"model.layers.1.self_attn.k_proj.bias".to_string()));
        assert!(!n.iter().any(|x| x.starts_with("lm_head")));
        assert!(!n.iter().any(|x| x.contains("q_norm")));
    }

    #[test]
    fn qwen3_shapes_use_head_dim() {
        let p = plan(&tiny_qwen3(), 400);
        let q = p
            .iter()
            .find(|t| t.name == "model.layers.0.self_attn.q_proj.weight")
            .map(|t| t.shape.clone());
        assert_eq!(q, Some(vec![128, 64]));
        let k_norm = p
            .iter()
            .find(|t| t.name == "model.layers.0.self_attn.k_norm.weight")
            .map(|t| t.shape.clone());
        assert_eq!(k_norm, Some(vec![32]));
    }

    #[test]
    fn llama_has_untied_head() {
        assert!(names(&tiny_llama()).contains(&"lm_head.weight".to_string()));
    }

    #[test]
    fn qwen3_4b_parameter_count_is_about_4b() {
        let total: usize = plan(&qwen3_4b(), 151_669)
            .iter()
            .map(TensorPlan::numel)
            .sum();
        assert!((4_000_000_000..4_050_000_000).contains(&total), "{total}");
    }

    #[test]
    fn padding_rows_of_the_embedding_are_zero() {
        let spec = tiny_llama();
        let embed = &plan(&spec, 400)[0];
        let v: Vec<f32> = embed.values(0).collect();
        let h = spec.hidden_size;
        assert!(v[..400 * h].iter().all(|&x| x != 0.0));
        assert!(v[400 * h..].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn values_depend_only_on_seed_and_name() {
        let t = &plan(&tiny_llama(), 400)[3];
        let a: Vec<f32> = t.values(5).take(8).collect();
        let b: Vec<f32> = t.values(5).take(8).collect();
        let c: Vec<f32> = t.values(6).take(8).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
