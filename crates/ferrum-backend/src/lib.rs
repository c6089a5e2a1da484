//! Device abstraction at the level of a decoder layer's operations.
//!
//! Invariants:
//! - A model is written once against [`Backend`]; nothing above this crate names a device.
//! - Activation buffers are allocated once for the largest step (`max_num_batched_tokens` rows)
//!   and every op works on the first `rows` rows, so no op allocates device memory per step.
//! - The KV cache is paged: token `t` of a sequence lives at slot
//!   `block_table[t / block_size] * block_size + t % block_size`, and `slot_mapping` gives the
//!   slot of each token written in this step.

mod batch;
pub mod cpu;
pub mod cuda;
mod error;
mod rope_freqs;
mod sampling;
mod tensor;

pub use batch::{AttentionBatch, AttentionParams, KvCacheSpec, RopeStyle};
pub use error::BackendError;
pub use rope_freqs::RopeFrequencies;
pub use sampling::{LogitAdjust, RowSampling};
pub use tensor::HostTensor;

pub type Result<T> = std::result::Result<T, BackendError>;

/// The operations a decoder-only transformer needs, implemented once per device.
///
/// All activations are row-major `[rows, cols]`. Weights of linear layers are `[out, in]`
/// (the checkpoint's layout) and compute `y = x · Wᵀ (+ b)`.
pub trait Backend: Send + Sync {
    /// A parameter tensor resident on the device (dense or block-quantized).
    type Weight: Send + Sync;
    /// An activation buffer with a fixed row capacity.
    type Activations: Send;
    /// Paged key/value storage for every layer.
    type KvCache: Send;
    /// Per-step metadata (positions, slot mapping, block tables) as the device wants it.
    type Batch: Send;
    /// Precomputed rotary tables.
    type Rope: Send + Sync;

    fn name(&self) -> String;

    /// Copies (and possibly converts) a checkpoint tensor to the device.
    fn load_weight(&self, tensor: &HostTensor<'_>) -> Result<Self::Weight>;
    fn new_activations(&self, max_rows: usize, cols: usize) -> Result<Self::Activations>;
    fn new_kv_cache(&self, spec: &KvCacheSpec) -> Result<Self::KvCache>;
    /// Rotary tables for `freqs.half()` pairs per head, already scaled (e.g. Llama-3
    /// `rope_scaling`).
    fn new_rope(
        &self,
        freqs: &RopeFrequencies,
        max_positions: usize,
        style: RopeStyle,
    ) -> Result<Self::Rope>;
    fn prepare_batch(&self, batch: &AttentionBatch<'_>) -> Result<Self::Batch>;

    /// `out[i] = table[input_ids[i]]` (dequantized).
    fn embedding(
        &self,
        table: &Self::Weight,
        batch: &Self::Batch,
        out: &mut Self::Activations,
    ) -> Result<()>;
    /// `out = rmsnorm(x) * weight`.
    fn rms_norm(
        &self,
        x: &Self::Activations,
        weight: &Self::Weight,
        eps: f32,
        rows: usize,
        out: &mut Self::Activations,
    ) -> Result<()>;
    /// `residual += x; out = rmsnorm(residual) * weight` in one pass.
    fn add_rms_norm(
        &self,
        residual: &mut Self::Activations,
        x: &Self::Activations,
        weight: &Self::Weight,
        eps: f32,
        rows: usize,
        out: &mut Self::Activations,
    ) -> Result<()>;
    /// RMSNorm of every `head_dim` slice in place (Qwen3's q/k norm).
    fn head_rms_norm(
        &self,
        x: &mut Self::Activations,
        weight: &Self::Weight,
        eps: f32,
        head_dim: usize,
        rows: usize,
    ) -> Result<()>;
    /// `out = x · Wᵀ + bias`.
    fn linear(
        &self,
        x: &Self::Activations,
        weight: &Self::Weight,
        bias: Option<&Self::Weight>,
        rows: usize,
        out: &mut Self::Activations,
    ) -> Result<()>;
    /// The q, k and v projections of one input (`linear` with each weight and bias); backends
    /// that can read `x` once for all three override it.
    fn linear_qkv(
        &self,
        x: &Self::Activations,
        proj: [(&Self::Weight, Option<&Self::Weight>); 3],
        rows: usize,
        q: &mut Self::Activations,
        k: &mut Self::Activations,
        v: &mut Self::Activations,
    ) -> Result<()> {
        self.linear(x, proj[0].0, proj[0].1, rows, q)?;
        self.linear(x, proj[1].0, proj[1].1, rows, k)?;
        self.linear(x, proj[2].0, proj[2].1, rows, v)
    }
    /// `residual += delta` where `delta` is given, then `out = rmsnorm(residual) * weight`.
    fn residual_norm(
        &self,
        residual: &mut Self::Activations,
        delta: Option<&Self::Activations>,
        weight: &Self::Weight,
        eps: f32,
        rows: usize,
        out: &mut Self::Activations,
    ) -> Result<()> {
        match delta {
            Some(d) => self.add_rms_norm(residual, d, weight, eps, rows, out),
            None => self.rms_norm(residual, weight, eps, rows, out),
        }
    }
    /// A projection whose output joins the residual stream (attention's o, the MLP's down).
    /// Returns true where the backend added `x · Wᵀ` into `residual` itself; otherwise `delta`
    /// holds the product and the caller hands it to the next norm (`residual_norm`,
    /// `norm_linear_qkv`, `norm_gate_up_silu`), which adds it. Either way the stream ends up
    /// with the rounded product added and rounded again.
    fn linear_residual(
        &self,
        x: &Self::Activations,
        weight: &Self::Weight,
        rows: usize,
        delta: &mut Self::Activations,
        residual: &mut Self::Activations,
    ) -> Result<bool> {
        let _ = residual;
        self.linear(x, weight, None, rows, delta)?;
        Ok(false)
    }
    /// `residual_norm` into `normed`, then `linear_qkv` of it. Backends that fold the norm into
    /// the projections override it; they may leave `normed` untouched.
    #[allow(clippy::too_many_arguments)]
    fn norm_linear_qkv(
        &self,
        residual: &mut Self::Activations,
        delta: Option<&Self::Activations>,
        norm: (&Self::Weight, f32),
        proj: [(&Self::Weight, Option<&Self::Weight>); 3],
        rows: usize,
        normed: &mut Self::Activations,
        q: &mut Self::Activations,
        k: &mut Self::Activations,
        v: &mut Self::Activations,
    ) -> Result<()> {
        self.residual_norm(residual, delta, norm.0, norm.1, rows, normed)?;
        self.linear_qkv(normed, proj, rows, q, k, v)
    }
    /// `residual_norm` into `normed`, then `gate_up_silu` of it; as `norm_linear_qkv`.
    #[allow(clippy::too_many_arguments)]
    fn norm_gate_up_silu(
        &self,
        residual: &mut Self::Activations,
        delta: Option<&Self::Activations>,
        norm: (&Self::Weight, f32),
        gate: &Self::Weight,
        up: &Self::Weight,
        rows: usize,
        normed: &mut Self::Activations,
        gate_buf: &mut Self::Activations,
        up_buf: &mut Self::Activations,
        out: &mut Self::Activations,
    ) -> Result<()> {
        self.residual_norm(residual, delta, norm.0, norm.1, rows, normed)?;
        self.gate_up_silu(normed, gate, up, rows, gate_buf, up_buf, out)
    }
    /// `out = silu(x · gateᵀ) * (x · upᵀ)`. `gate_buf` and `up_buf` receive the projections
    /// where a backend computes them as separate ops; a fused backend may leave them untouched.
    #[allow(clippy::too_many_arguments)]
    fn gate_up_silu(
        &self,
        x: &Self::Activations,
        gate: &Self::Weight,
        up: &Self::Weight,
        rows: usize,
        gate_buf: &mut Self::Activations,
        up_buf: &mut Self::Activations,
        out: &mut Self::Activations,
    ) -> Result<()> {
        self.linear(x, gate, None, rows, gate_buf)?;
        self.linear(x, up, None, rows, up_buf)?;
        self.silu_mul(gate_buf, up_buf, rows, out)
    }
    /// Rotates the query and key heads of every token at its position.
    fn rotary(
        &self,
        rope: &Self::Rope,
        batch: &Self::Batch,
        q: &mut Self::Activations,
        k: &mut Self::Activations,
        head_dim: usize,
    ) -> Result<()>;
    /// The step's prologue to attention: Qwen3's per-head q/k RMSNorm when `qk_norm` is given
    /// (`(q weight, k weight, eps)`), rotary, then this step's keys and values into layer
    /// `layer` of the cache: `head_rms_norm`, `rotary` and `write_kv` in that order. Afterwards
    /// `q` holds the rotated queries; what `k` holds is up to the backend (the cache has the
    /// keys). Backends that can do it in one pass override it.
    #[allow(clippy::too_many_arguments)]
    fn qk_rope_write_kv(
        &self,
        rope: &Self::Rope,
        batch: &Self::Batch,
        q: &mut Self::Activations,
        k: &mut Self::Activations,
        v: &Self::Activations,
        qk_norm: Option<(&Self::Weight, &Self::Weight, f32)>,
        head_dim: usize,
        rows: usize,
        cache: &mut Self::KvCache,
        layer: usize,
    ) -> Result<()> {
        if let Some((qn, kn, eps)) = qk_norm {
            self.head_rms_norm(q, qn, eps, head_dim, rows)?;
            self.head_rms_norm(k, kn, eps, head_dim, rows)?;
        }
        self.rotary(rope, batch, q, k, head_dim)?;
        self.write_kv(cache, layer, batch, k, v)
    }
    /// Stores this step's keys and values at `slot_mapping`.
    fn write_kv(
        &self,
        cache: &mut Self::KvCache,
        layer: usize,
        batch: &Self::Batch,
        k: &Self::Activations,
        v: &Self::Activations,
    ) -> Result<()>;
    /// Causal attention of this step's queries over each sequence's cached context
    /// (which already includes this step's keys).
    fn attention(
        &self,
        cache: &Self::KvCache,
        layer: usize,
        batch: &Self::Batch,
        params: &AttentionParams,
        q: &Self::Activations,
        out: &mut Self::Activations,
    ) -> Result<()>;
    /// `out = silu(gate) * up`.
    fn silu_mul(
        &self,
        gate: &Self::Activations,
        up: &Self::Activations,
        rows: usize,
        out: &mut Self::Activations,
    ) -> Result<()>;
    /// `out[i] = x[logits_indices[i]]`: keeps only the rows whose logits are needed.
    fn gather_logit_rows(
        &self,
        x: &Self::Activations,
        batch: &Self::Batch,
        out: &mut Self::Activations,
    ) -> Result<()>;
    /// Reads the first `rows` rows back as f32.
    fn to_host(&self, x: &Self::Activations, rows: usize) -> Result<Vec<f32>>;

    /// [`Backend::to_host`] into `out` (replacing its contents); backends that can fill a
    /// buffer in place keep its allocation, so a step's logits cost no new memory.
    fn to_host_into(&self, x: &Self::Activations, rows: usize, out: &mut Vec<f32>) -> Result<()> {
        *out = self.to_host(x, rows)?;
        Ok(())
    }

    /// Reads rows `rows` (in that order) back as f32, concatenated.
    fn rows_to_host(&self, x: &Self::Activations, rows: &[usize]) -> Result<Vec<f32>> {
        let Some(&last) = rows.iter().max() else {
            return Ok(Vec::new());
        };
        let all = self.to_host(x, last + 1)?;
        let cols = all.len() / (last + 1);
        Ok(rows
            .iter()
            .flat_map(|&r| all[r * cols..(r + 1) * cols].iter().copied())
            .collect())
    }

    /// Whether steps can be recorded once and replayed ([`Backend::graph_begin`]). A replay
    /// reruns the recorded ops with the same buffers and shapes, reading the metadata that
    /// [`Backend::prepare_batch`] uploaded for the current step.
    fn supports_graphs(&self) -> bool {
        false
    }

    /// From now on, ops are recorded as graph `key` instead of run.
    fn graph_begin(&self, key: usize) -> Result<()> {
        let _ = key;
        Err(BackendError::Device(format!(
            "{} does not record graphs",
            self.name()
        )))
    }

    /// Ends the recording begun by [`Backend::graph_begin`]; keeps the graph when `keep` (the
    /// caller passes false when an op failed while recording).
    fn graph_end(&self, keep: bool) -> Result<()> {
        let _ = keep;
        Err(BackendError::Device(format!(
            "{} does not record graphs",
            self.name()
        )))
    }

    /// Runs graph `key`; `Ok(false)` when there is none (never recorded, or dropped because a
    /// buffer it used moved).
    fn graph_replay(&self, key: usize) -> Result<bool> {
        let _ = key;
        Ok(false)
    }

    /// Whether [`Backend::sample`] selects tokens on the device. When false the caller reads
    /// the logits back and samples on the host.
    fn samples_on_device(&self) -> bool {
        false
    }

    /// Applies `adjust` to the first `rows.len()` rows of `logits` in place and selects one
    /// token per row; rows marked [`RowSampling::Host`] get an unspecified value (the caller
    /// reads those rows back and samples them itself).
    fn sample(
        &self,
        logits: &mut Self::Activations,
        rows: &[RowSampling],
        adjust: &[LogitAdjust],
    ) -> Result<Vec<u32>> {
        let _ = (logits, rows, adjust);
        Err(BackendError::Device(format!(
            "{} does not sample on the device",
            self.name()
        )))
    }

    /// Whether [`Backend::sample_deferred`], [`Backend::wait_sampled`] and
    /// [`Backend::patch_input_ids`] work: the tokens of a step can stay on the device while
    /// the host plans and launches the next one (async scheduling).
    fn supports_deferred_sampling(&self) -> bool {
        false
    }

    /// As [`Backend::sample`], but returns once the selection is queued: the tokens stay on
    /// the device for [`Backend::patch_input_ids`] and come to the host through
    /// [`Backend::wait_sampled`] with the returned ticket. Tickets are waited for in order,
    /// each before the one after next is issued.
    fn sample_deferred(
        &self,
        logits: &mut Self::Activations,
        rows: &[RowSampling],
        adjust: &[LogitAdjust],
    ) -> Result<u64> {
        let _ = (logits, rows, adjust);
        Err(BackendError::Device(format!(
            "{} does not defer sampling",
            self.name()
        )))
    }

    /// The tokens of a [`Backend::sample_deferred`] call, one per row, into `out` (replacing
    /// its contents, so that a caller that keeps `out` allocates nothing); blocks until they
    /// are on the host.
    fn wait_sampled(&self, ticket: u64, out: &mut Vec<u32>) -> Result<()> {
        let _ = (ticket, out);
        Err(BackendError::Device(format!(
            "{} does not defer sampling",
            self.name()
        )))
    }

    /// Sets `input_ids[t] = sampled[r]` on the device for each `[t, r]` of `patches`, where
    /// `sampled` are the tokens of the latest [`Backend::sample_deferred`] call: decode
    /// inputs the host has not seen yet. Call after [`Backend::prepare_batch`] of `batch`
    /// and before the forward pass that reads it.
    fn patch_input_ids(&self, batch: &Self::Batch, patches: &[[u32; 2]]) -> Result<()> {
        let _ = batch;
        if patches.is_empty() {
            return Ok(());
        }
        Err(BackendError::Device(format!(
            "{} does not defer sampling",
            self.name()
        )))
    }
}
