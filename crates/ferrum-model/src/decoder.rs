//! The decoder-only transformer shared by every family, written once against [`Backend`].
//!
//! Per layer (pre-norm): `x += attn(norm(x)); x += mlp(norm(x))`, with the residual addition
//! fused into the next norm. Attention: q/k/v projections (+bias), optional per-head q/k
//! RMSNorm, rotary, KV write at the slot mapping, paged attention, output projection. MLP:
//! `down(silu(gate(x)) · up(x))`. Logits are computed only for the batch's `logits_indices`.

use ferrum_backend::{AttentionParams, Backend, HostTensor};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::weights::WeightSource;

struct Layer<B: Backend> {
    input_layernorm: B::Weight,
    post_attention_layernorm: B::Weight,
    q_proj: B::Weight,
    k_proj: B::Weight,
    v_proj: B::Weight,
    o_proj: B::Weight,
    q_bias: Option<B::Weight>,
    k_bias: Option<B::Weight>,
    v_bias: Option<B::Weight>,
    q_norm: Option<B::Weight>,
    k_norm: Option<B::Weight>,
    gate_proj: B::Weight,
    up_proj: B::Weight,
    down_proj: B::Weight,
}

/// Preallocated activations for steps of up to `max_tokens` tokens.
pub struct Workspace<B: Backend> {
    max_tokens: usize,
    residual: B::Activations,
    normed: B::Activations,
    q: B::Activations,
    k: B::Activations,
    v: B::Activations,
    attn: B::Activations,
    proj: B::Activations,
    gate: B::Activations,
    up: B::Activations,
    act: B::Activations,
    last: B::Activations,
    /// `[num_logits, vocab]` after a forward pass.
    pub logits: B::Activations,
}

impl<B: Backend> Workspace<B> {
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }
}

pub struct DecoderModel<B: Backend> {
    config: ModelConfig,
    embed_tokens: B::Weight,
    layers: Vec<Layer<B>>,
    norm: B::Weight,
    /// `None` when the head is tied to the embedding.
    lm_head: Option<B::Weight>,
    rope: B::Rope,
    attn: AttentionParams,
}

/// Every tensor the decoder reads, with its expected shape (outermost first).
pub fn expected_tensors(c: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (h, hd, i) = (c.hidden_size, c.head_dim, c.intermediate_size);
    let (q_out, kv_out) = (c.num_heads * hd, c.num_kv_heads * hd);
    let mut v = vec![
        (
            "model.embed_tokens.weight".to_string(),
            vec![c.vocab_size, h],
        ),
        ("model.norm.weight".to_string(), vec![h]),
    ];
    if !c.tie_word_embeddings {
        v.push(("lm_head.weight".into(), vec![c.vocab_size, h]));
    }
    for l in 0..c.num_layers {
        let p = format!("model.layers.{l}");
        let mut add = |n: &str, s: Vec<usize>| v.push((format!("{p}.{n}"), s));
        add("input_layernorm.weight", vec![h]);
        add("post_attention_layernorm.weight", vec![h]);
        add("self_attn.q_proj.weight", vec![q_out, h]);
        add("self_attn.k_proj.weight", vec![kv_out, h]);
        add("self_attn.v_proj.weight", vec![kv_out, h]);
        add("self_attn.o_proj.weight", vec![h, q_out]);
        if c.qkv_bias {
            add("self_attn.q_proj.bias", vec![q_out]);
            add("self_attn.k_proj.bias", vec![kv_out]);
            add("self_attn.v_proj.bias", vec![kv_out]);
        }
        if c.qk_norm {
            add("self_attn.q_norm.weight", vec![hd]);
            add("self_attn.k_norm.weight", vec![hd]);
        }
        add("mlp.gate_proj.weight", vec![i, h]);
        add("mlp.up_proj.weight", vec![i, h]);
        add("mlp.down_proj.weight", vec![h, i]);
    }
    v
}

/// Loads one tensor and checks its shape against what the config implies.
fn load<B: Backend>(
    backend: &B,
    src: &dyn WeightSource,
    name: &str,
    expected: &[usize],
) -> Result<B::Weight> {
    let t: HostTensor<'_> = src.tensor(name)?;
    if t.shape != expected {
        return Err(ModelError::TensorShape {
            name: name.into(),
            expected: expected.to_vec(),
            found: t.shape.clone(),
        });
    }
    Ok(backend.load_weight(&t)?)
}

impl<B: Backend> DecoderModel<B> {
    /// Builds the model from checkpoint tensors named as in Hugging Face's layout.
    pub fn load(backend: &B, config: ModelConfig, src: &dyn WeightSource) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let (h, hd) = (c.hidden_size, c.head_dim);
        let (q_out, kv_out) = (c.num_heads * hd, c.num_kv_heads * hd);
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("model.layers.{i}");
            let w = |n: &str, shape: &[usize]| load(backend, src, &format!("{p}.{n}"), shape);
            let bias = |n: &str, len: usize| -> Result<Option<B::Weight>> {
                if c.qkv_bias {
                    w(n, &[len]).map(Some)
                } else {
                    Ok(None)
                }
            };
            let norm = |n: &str| -> Result<Option<B::Weight>> {
                if c.qk_norm {
                    w(n, &[hd]).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                input_layernorm: w("input_layernorm.weight", &[h])?,
                post_attention_layernorm: w("post_attention_layernorm.weight", &[h])?,
                q_proj: w("self_attn.q_proj.weight", &[q_out, h])?,
                k_proj: w("self_attn.k_proj.weight", &[kv_out, h])?,
                v_proj: w("self_attn.v_proj.weight", &[kv_out, h])?,
                o_proj: w("self_attn.o_proj.weight", &[h, q_out])?,
                q_bias: bias("self_attn.q_proj.bias", q_out)?,
                k_bias: bias("self_attn.k_proj.bias", kv_out)?,
                v_bias: bias("self_attn.v_proj.bias", kv_out)?,
                q_norm: norm("self_attn.q_norm.weight")?,
                k_norm: norm("self_attn.k_norm.weight")?,
                gate_proj: w("mlp.gate_proj.weight", &[c.intermediate_size, h])?,
                up_proj: w("mlp.up_proj.weight", &[c.intermediate_size, h])?,
                down_proj: w("mlp.down_proj.weight", &[h, c.intermediate_size])?,
            });
        }
        let embed_tokens = load(
            backend,
            src,
            "model.embed_tokens.weight",
            &[c.vocab_size, h],
        )?;
        let norm = load(backend, src, "model.norm.weight", &[h])?;
        // A tied checkpoint may still ship `lm_head.weight` (a copy); the embedding serves.
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            Some(load(backend, src, "lm_head.weight", &[c.vocab_size, h])?)
        };
        let rope = backend.new_rope(
            &c.rope_frequencies(),
            c.max_position_embeddings,
            c.rope_style,
        )?;
        let attn = AttentionParams {
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: hd,
            scale: 1.0 / (hd as f32).sqrt(),
        };
        Ok(Self {
            config,
            embed_tokens,
            layers,
            norm,
            lm_head,
            rope,
            attn,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Allocates activations for steps of up to `max_tokens` tokens and `max_logits` logit rows.
    pub fn workspace(
        &self,
        backend: &B,
        max_tokens: usize,
        max_logits: usize,
    ) -> Result<Workspace<B>> {
        let c = &self.config;
        let (h, hd) = (c.hidden_size, c.head_dim);
        let a = |cols: usize| backend.new_activations(max_tokens, cols);
        Ok(Workspace {
            max_tokens,
            residual: a(h)?,
            normed: a(h)?,
            q: a(c.num_heads * hd)?,
            k: a(c.num_kv_heads * hd)?,
            v: a(c.num_kv_heads * hd)?,
            attn: a(c.num_heads * hd)?,
            proj: a(h)?,
            gate: a(c.intermediate_size)?,
            up: a(c.intermediate_size)?,
            act: a(c.intermediate_size)?,
            last: backend.new_activations(max_logits, h)?,
            logits: backend.new_activations(max_logits, c.vocab_size)?,
        })
    }

    /// Runs one step. Afterwards `ws.logits` holds one row per `logits_indices` entry.
    pub fn forward(
        &self,
        backend: &B,
        batch: &B::Batch,
        num_tokens: usize,
        num_logits: usize,
        kv: &mut B::KvCache,
        ws: &mut Workspace<B>,
    ) -> Result<()> {
        if num_tokens > ws.max_tokens {
            return Err(ModelError::Backend(
                ferrum_backend::BackendError::Capacity {
                    what: "forward tokens",
                    needed: num_tokens,
                    capacity: ws.max_tokens,
                },
            ));
        }
        let c = &self.config;
        let n = num_tokens;
        let eps = c.rms_norm_eps;
        backend.embedding(&self.embed_tokens, batch, &mut ws.residual)?;
        // Whether `ws.proj` holds a projection that has yet to join the residual stream: a
        // backend adds it in the projection itself where it can (`linear_residual`), otherwise
        // the next norm does.
        let mut pending = false;
        for (i, l) in self.layers.iter().enumerate() {
            // 1. Pre-attention norm and the q/k/v projections.
            backend.norm_linear_qkv(
                &mut ws.residual,
                pending.then_some(&ws.proj),
                (&l.input_layernorm, eps),
                [
                    (&l.q_proj, l.q_bias.as_ref()),
                    (&l.k_proj, l.k_bias.as_ref()),
                    (&l.v_proj, l.v_bias.as_ref()),
                ],
                n,
                &mut ws.normed,
                &mut ws.q,
                &mut ws.k,
                &mut ws.v,
            )?;
            // 2. Per-head q/k norm (Qwen3), rotary, and this step's keys and values into the
            //    cache; 3. attention over the whole context, its projection into the residual.
            let qk_norm = match (&l.q_norm, &l.k_norm) {
                (Some(qn), Some(kn)) => Some((qn, kn, eps)),
                _ => None,
            };
            backend.qk_rope_write_kv(
                &self.rope, batch, &mut ws.q, &mut ws.k, &ws.v, qk_norm, c.head_dim, n, kv, i,
            )?;
            backend.attention(kv, i, batch, &self.attn, &ws.q, &mut ws.attn)?;
            let added =
                backend.linear_residual(&ws.attn, &l.o_proj, n, &mut ws.proj, &mut ws.residual)?;
            // 4. MLP.
            backend.norm_gate_up_silu(
                &mut ws.residual,
                (!added).then_some(&ws.proj),
                (&l.post_attention_layernorm, eps),
                &l.gate_proj,
                &l.up_proj,
                n,
                &mut ws.normed,
                &mut ws.gate,
                &mut ws.up,
                &mut ws.act,
            )?;
            pending = !backend.linear_residual(
                &ws.act,
                &l.down_proj,
                n,
                &mut ws.proj,
                &mut ws.residual,
            )?;
        }
        backend.residual_norm(
            &mut ws.residual,
            pending.then_some(&ws.proj),
            &self.norm,
            eps,
            n,
            &mut ws.normed,
        )?;
        backend.gather_logit_rows(&ws.normed, batch, &mut ws.last)?;
        let head = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        backend.linear(&ws.last, head, None, num_logits, &mut ws.logits)?;
        Ok(())
    }
}
