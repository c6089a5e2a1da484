//! Model configuration: Hugging Face `config.json` as read, and the normalized form the decoder
//! is built from.
//!
//! Invariant: a [`ModelConfig`] that exists has passed every check the decoder relies on
//! (divisible head counts, positive sizes, a supported rotary scaling).

use ferrum_backend::{RopeFrequencies, RopeStyle};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ModelError, Result};

/// The families this build can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
    Qwen3,
}

impl Architecture {
    pub fn hf_name(self) -> &'static str {
        match self {
            Architecture::Llama => "LlamaForCausalLM",
            Architecture::Qwen2 => "Qwen2ForCausalLM",
            Architecture::Qwen3 => "Qwen3ForCausalLM",
        }
    }
}

/// `config.json` fields as written by Hugging Face (all optional here; families decide).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HfConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    pub model_type: Option<String>,
    pub vocab_size: Option<usize>,
    pub hidden_size: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub rms_norm_eps: Option<f64>,
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<Value>,
    pub max_position_embeddings: Option<usize>,
    pub tie_word_embeddings: Option<bool>,
    pub attention_bias: Option<bool>,
    pub mlp_bias: Option<bool>,
    pub hidden_act: Option<String>,
    pub torch_dtype: Option<String>,
    pub dtype: Option<String>,
    pub bos_token_id: Option<Value>,
    pub eos_token_id: Option<Value>,
    pub use_sliding_window: Option<bool>,
    pub partial_rotary_factor: Option<f64>,
}

/// Llama-3 frequency-dependent rotary scaling (`rope_scaling.rope_type = "llama3"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    Llama3(Llama3Scaling),
    /// Positions divided by `factor`.
    Linear(f64),
}

/// Whose arithmetic forms the rotary angles (see `ferrum_backend::RopeFrequencies`): the
/// reference implementation of the checkpoint's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeAngles {
    /// Hugging Face checkpoints: transformers' `position · inv_freq`.
    Transformers,
    /// GGUF files: llama.cpp's running product of `base^(−2/d)`.
    LlamaCpp,
}

/// Everything the decoder needs, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub rope_style: RopeStyle,
    pub rope_angles: RopeAngles,
    /// Per-frequency divisors stored in some GGUF files (`rope_freqs.weight`).
    pub rope_freq_factors: Option<Vec<f32>>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub qkv_bias: bool,
    pub qk_norm: bool,
    /// The checkpoint's declared dtype (`torch_dtype`), for reporting.
    pub dtype: String,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

pub(crate) fn require<T: Copy>(v: Option<T>, name: &'static str) -> Result<T> {
    v.ok_or(ModelError::MissingField(name))
}

/// Token ids given as an int or a list of ints.
pub(crate) fn token_ids(v: &Option<Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64())
            .map(|x| x as u32)
            .collect(),
        _ => Vec::new(),
    }
}

fn unsupported(field: &str, value: impl ToString, hint: &str) -> ModelError {
    ModelError::Unsupported {
        field: field.into(),
        value: value.to_string(),
        hint: hint.into(),
    }
}

pub(crate) fn parse_rope_scaling(v: &Option<Value>) -> Result<Option<RopeScaling>> {
    let Some(Value::Object(m)) = v else {
        return match v {
            None | Some(Value::Null) => Ok(None),
            Some(other) => Err(unsupported("rope_scaling", other, "expected an object")),
        };
    };
    let kind = m
        .get("rope_type")
        .or_else(|| m.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let num = |k: &'static str| -> Result<f64> {
        m.get(k)
            .and_then(Value::as_f64)
            .ok_or(ModelError::MissingField(k))
    };
    match kind {
        "default" => Ok(None),
        "llama3" => Ok(Some(RopeScaling::Llama3(Llama3Scaling {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: num("original_max_position_embeddings")?,
        }))),
        "linear" => Ok(Some(RopeScaling::Linear(num("factor")?))),
        other => Err(unsupported(
            "rope_scaling.rope_type",
            other,
            "supported: default, linear, llama3",
        )),
    }
}

impl ModelConfig {
    /// Shared checks of a family's config: supported activation, sane sizes.
    pub(crate) fn from_hf_common(
        hf: &HfConfig,
        architecture: Architecture,
        qkv_bias: bool,
        qk_norm: bool,
        tie_default: bool,
    ) -> Result<Self> {
        if let Some(act) = hf.hidden_act.as_deref() {
            if act != "silu" {
                return Err(unsupported(
                    "hidden_act",
                    act,
                    "only silu (SwiGLU) is supported",
                ));
            }
        }
        if hf.mlp_bias == Some(true) {
            return Err(unsupported(
                "mlp_bias",
                true,
                "MLP biases are not supported",
            ));
        }
        if hf.use_sliding_window == Some(true) {
            return Err(unsupported(
                "use_sliding_window",
                true,
                "sliding-window attention is not supported",
            ));
        }
        if let Some(f) = hf.partial_rotary_factor {
            if (f - 1.0).abs() > 1e-9 {
                return Err(unsupported(
                    "partial_rotary_factor",
                    f,
                    "only 1.0 is supported",
                ));
            }
        }
        let hidden_size = require(hf.hidden_size, "hidden_size")?;
        let num_heads = require(hf.num_attention_heads, "num_attention_heads")?;
        let head_dim = match hf.head_dim {
            Some(d) => d,
            None if num_heads > 0 => hidden_size / num_heads,
            None => 0,
        };
        let cfg = ModelConfig {
            architecture,
            model_type: hf.model_type.clone().unwrap_or_default(),
            vocab_size: require(hf.vocab_size, "vocab_size")?,
            hidden_size,
            intermediate_size: require(hf.intermediate_size, "intermediate_size")?,
            num_layers: require(hf.num_hidden_layers, "num_hidden_layers")?,
            num_heads,
            num_kv_heads: hf.num_key_value_heads.unwrap_or(num_heads),
            head_dim,
            rms_norm_eps: hf.rms_norm_eps.unwrap_or(1e-6) as f32,
            rope_theta: hf.rope_theta.unwrap_or(10_000.0),
            rope_scaling: parse_rope_scaling(&hf.rope_scaling)?,
            rope_style: RopeStyle::Neox,
            rope_angles: RopeAngles::Transformers,
            rope_freq_factors: None,
            max_position_embeddings: require(
                hf.max_position_embeddings,
                "max_position_embeddings",
            )?,
            tie_word_embeddings: hf.tie_word_embeddings.unwrap_or(tie_default),
            qkv_bias,
            qk_norm,
            dtype: hf
                .torch_dtype
                .clone()
                .or_else(|| hf.dtype.clone())
                .unwrap_or_else(|| "float32".into()),
            bos_token_id: token_ids(&hf.bos_token_id).first().copied(),
            eos_token_ids: token_ids(&hf.eos_token_id),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the invariants the decoder relies on.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, value: usize, reason: &str| ModelError::InvalidConfig {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        };
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                return Err(bad(field, v, "must be positive"));
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(bad(
                "num_key_value_heads",
                self.num_kv_heads,
                &format!("must divide num_attention_heads = {}", self.num_heads),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(bad(
                "head_dim",
                self.head_dim,
                "must be even for rotary embeddings",
            ));
        }
        if self.rope_theta <= 0.0 || !self.rope_theta.is_finite() {
            return Err(ModelError::InvalidConfig {
                field: "rope_theta".into(),
                value: self.rope_theta.to_string(),
                reason: "must be a positive number".into(),
            });
        }
        Ok(())
    }

    /// The rotary angles, formed as the checkpoint format's reference implementation forms them.
    pub fn rope_frequencies(&self) -> RopeFrequencies {
        match (self.rope_angles, self.rope_scaling) {
            // llama.cpp has no Llama-3 scaling of its own (GGUF files carry it as factors).
            (RopeAngles::Transformers, _) | (_, Some(RopeScaling::Llama3(_))) => {
                RopeFrequencies::Product {
                    inv_freq: self.inv_freq(),
                }
            }
            (RopeAngles::LlamaCpp, _) => {
                let d = self.head_dim as f32;
                let freq_scale = match self.rope_scaling {
                    Some(RopeScaling::Linear(factor)) => 1.0 / factor as f32,
                    _ => 1.0,
                };
                RopeFrequencies::RunningProduct {
                    half: self.head_dim / 2,
                    theta_scale: (self.rope_theta as f32).powf(-2.0 / d),
                    freq_scale,
                    freq_factors: self.rope_freq_factors.clone().unwrap_or_default(),
                }
            }
        }
    }

    /// Rotary inverse frequencies with the configured scaling applied.
    pub fn inv_freq(&self) -> Vec<f32> {
        let d = self.head_dim as f64;
        (0..self.head_dim / 2)
            .map(|i| {
                let mut f = 1.0 / self.rope_theta.powf(2.0 * i as f64 / d);
                match self.rope_scaling {
                    Some(RopeScaling::Linear(factor)) => f /= factor,
                    Some(RopeScaling::Llama3(s)) => f = llama3_scale(f, &s),
                    None => {}
                }
                if let Some(ff) = self.rope_freq_factors.as_ref().and_then(|v| v.get(i)) {
                    f /= f64::from(*ff);
                }
                f as f32
            })
            .collect()
    }

    /// Bytes of K and V per token across all layers at `elem_bytes` per element.
    pub fn kv_bytes_per_token(&self, elem_bytes: usize) -> usize {
        2 * self.num_layers * self.num_kv_heads * self.head_dim * elem_bytes
    }

    /// Parameter count implied by the shapes.
    pub fn num_parameters(&self) -> u64 {
        let (h, i, v) = (
            self.hidden_size as u64,
            self.intermediate_size as u64,
            self.vocab_size as u64,
        );
        let q = (self.num_heads * self.head_dim) as u64;
        let kv = (self.num_kv_heads * self.head_dim) as u64;
        let mut layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h;
        if self.qkv_bias {
            layer += q + 2 * kv;
        }
        if self.qk_norm {
            layer += 2 * self.head_dim as u64;
        }
        let head = if self.tie_word_embeddings { 0 } else { v * h };
        v * h + self.num_layers as u64 * layer + h + head
    }
}

fn llama3_scale(f: f64, s: &Llama3Scaling) -> f64 {
    let low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
    let high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
    let wavelen = 2.0 * std::f64::consts::PI / f;
    if wavelen < high_wavelen {
        f
    } else if wavelen > low_wavelen {
        f / s.factor
    } else {
        let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
            / (s.high_freq_factor - s.low_freq_factor);
        (1.0 - smooth) * f / s.factor + smooth * f
    }
}
