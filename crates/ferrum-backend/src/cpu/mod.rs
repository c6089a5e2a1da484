//! CPU backend: f32 activations, dense weights as f32, GGUF block formats kept quantized.
//!
//! Invariants:
//! - Every op runs on this backend's own [`pool::SpinPool`]: the calling (engine) thread plus
//!   `threads − 1` helpers, so `--threads` bounds the parallelism of one step.
//! - Ops give every output element the same value whatever the batch around it (see `linear`,
//!   `quant::matmul` and `attention`), which is what makes greedy outputs batch-invariant.
//! - KV cache layout per layer is `[num_blocks, num_kv_heads, block_size, head_dim]`, so one
//!   head of one block is a contiguous `block_size × head_dim` tile.

mod attention;
mod attention_sums;
mod elementwise;
mod expf;
mod linear;
mod norm;
pub mod pool;
pub mod quant;
mod rope;

use std::cell::RefCell;

use crate::{
    AttentionBatch, AttentionParams, Backend, BackendError, HostTensor, KvCacheSpec, Result,
    RopeFrequencies, RopeStyle,
};

pub use attention::CpuKvCache;
pub use rope::CpuRope;

/// A parameter on the CPU.
#[derive(Debug)]
pub enum CpuWeight {
    /// Dense, converted to f32 at load; `rows × cols`, row-major.
    Dense {
        data: Vec<f32>,
        rows: usize,
        cols: usize,
    },
    /// GGUF block-quantized rows, regrouped once for the matmul kernels.
    Quantized(quant::PreparedMatrix),
}

impl CpuWeight {
    pub fn rows(&self) -> usize {
        match self {
            CpuWeight::Dense { rows, .. } => *rows,
            CpuWeight::Quantized(m) => m.rows(),
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            CpuWeight::Dense { cols, .. } => *cols,
            CpuWeight::Quantized(m) => m.cols(),
        }
    }

    /// The weight as one f32 vector (norm weights and biases are always dense).
    fn as_vector(&self, what: &'static str) -> Result<&[f32]> {
        match self {
            CpuWeight::Dense { data, .. } => Ok(data),
            CpuWeight::Quantized(m) => Err(BackendError::UnsupportedDType {
                op: what,
                dtype: m.dtype(),
            }),
        }
    }
}

/// Row-major f32 activations with a fixed row capacity.
///
/// Invariant: `quantized` holds the 8-bit form of `data` or nothing: every mutable access goes
/// through [`Self::rows_mut`], which drops it.
#[derive(Debug)]
pub struct CpuActivations {
    data: Vec<f32>,
    cols: usize,
    /// Filled by the first quantized `linear` that reads these activations, reused by the
    /// next ones with the same input (q/k/v, gate/up). A `RefCell` because `linear` only
    /// borrows its input; activations are never shared between threads (not `Sync`).
    quantized: RefCell<quant::QuantizedActs>,
}

impl Clone for CpuActivations {
    fn clone(&self) -> Self {
        CpuActivations {
            data: self.data.clone(),
            cols: self.cols,
            quantized: RefCell::default(),
        }
    }
}

impl CpuActivations {
    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn capacity_rows(&self) -> usize {
        self.data.len() / self.cols.max(1)
    }

    fn rows(&self, rows: usize, what: &'static str) -> Result<&[f32]> {
        let n = rows * self.cols;
        self.data.get(..n).ok_or(BackendError::Capacity {
            what,
            needed: rows,
            capacity: self.capacity_rows(),
        })
    }

    fn rows_mut(&mut self, rows: usize, what: &'static str) -> Result<&mut [f32]> {
        self.quantized.get_mut().invalidate();
        let n = rows * self.cols;
        let capacity = self.capacity_rows();
        self.data.get_mut(..n).ok_or(BackendError::Capacity {
            what,
            needed: rows,
            capacity,
        })
    }
}

/// One step's metadata, owned.
#[derive(Debug, Clone, Default)]
pub struct CpuBatch {
    input_ids: Vec<u32>,
    positions: Vec<u32>,
    slot_mapping: Vec<u32>,
    query_start_loc: Vec<u32>,
    seq_lens: Vec<u32>,
    block_tables: Vec<u32>,
    max_blocks_per_seq: usize,
    logits_indices: Vec<u32>,
}

impl CpuBatch {
    fn num_tokens(&self) -> usize {
        self.input_ids.len()
    }
}

/// The vector extensions found at run time, for logs.
pub fn simd_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let mut f = Vec::new();
        if is_x86_feature_detected!("avx2") {
            f.push("avx2");
        }
        if is_x86_feature_detected!("fma") {
            f.push("fma");
        }
        if is_x86_feature_detected!("avx512f") {
            f.push("avx512f");
        }
        if is_x86_feature_detected!("avx512vnni") {
            f.push("avx512vnni");
        }
        if f.is_empty() {
            return "scalar".into();
        }
        f.join("+")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "scalar".into()
    }
}

/// The CPU backend with its own thread pool.
pub struct CpuBackend {
    pool: pool::SpinPool,
    threads: usize,
    numerics: CpuNumerics,
}

/// Which summation orders the backend uses where speed and reproducing llama.cpp differ.
///
/// Both compute the same model with the same 8-bit activation quantization; they differ only
/// in the order of f32 additions inside quantized matrix products and attention. That is enough to change later tokens, because re-quantizing the
/// activations turns a one-ulp difference into a whole quantization step now and then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuNumerics {
    /// Interleaved weight groups (several times faster for quantized types) and
    /// register-resident attention sums.
    #[default]
    Fast,
    /// llama.cpp's x86 orders: GGUF rows with its `vec_dot` order, and its attention sums, so
    /// that a GGUF model gives llama.cpp's activations bit for bit (its AVX-512 build); several
    /// times slower on quantized weights.
    LlamaCpp,
}

impl CpuNumerics {
    /// From `FERRUM_CPU_NUMERICS` (`fast`, the default, or `llamacpp`).
    pub fn from_env() -> Result<Self> {
        match std::env::var("FERRUM_CPU_NUMERICS").ok().as_deref() {
            None | Some("") | Some("fast") => Ok(Self::Fast),
            Some("llamacpp") | Some("llama.cpp") => Ok(Self::LlamaCpp),
            Some(other) => Err(BackendError::Config(format!(
                "FERRUM_CPU_NUMERICS={other}: expected fast or llamacpp"
            ))),
        }
    }
}

impl CpuBackend {
    /// `threads = 0` uses every available core.
    pub fn new(threads: usize) -> Result<Self> {
        Self::with_numerics(threads, CpuNumerics::Fast)
    }

    pub fn with_numerics(threads: usize, numerics: CpuNumerics) -> Result<Self> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let pool = pool::SpinPool::new(threads)?;
        Ok(Self {
            pool,
            threads,
            numerics,
        })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }
}

impl Backend for CpuBackend {
    type Weight = CpuWeight;
    type Activations = CpuActivations;
    type KvCache = CpuKvCache;
    type Batch = CpuBatch;
    type Rope = CpuRope;

    fn name(&self) -> String {
        format!("cpu ({} threads, {})", self.threads, simd_features())
    }

    fn load_weight(&self, tensor: &HostTensor<'_>) -> Result<CpuWeight> {
        tensor.validate()?;
        let (rows, cols) = tensor.matrix_dims();
        if tensor.dtype.is_quantized() {
            let m = quant::QuantMatrix {
                dtype: tensor.dtype,
                rows,
                cols,
                data: &tensor.data,
            };
            Ok(CpuWeight::Quantized(match self.numerics {
                CpuNumerics::Fast => quant::PreparedMatrix::new(&m)?,
                CpuNumerics::LlamaCpp => quant::PreparedMatrix::gguf_rows(&m)?,
            }))
        } else {
            Ok(CpuWeight::Dense {
                data: tensor.to_f32_dense()?,
                rows,
                cols,
            })
        }
    }

    fn new_activations(&self, max_rows: usize, cols: usize) -> Result<CpuActivations> {
        let n = max_rows.checked_mul(cols).ok_or_else(|| {
            BackendError::OutOfMemory(format!("activation buffer {max_rows}×{cols}"))
        })?;
        Ok(CpuActivations {
            data: vec![0.0; n],
            cols,
            quantized: RefCell::default(),
        })
    }

    fn new_kv_cache(&self, spec: &KvCacheSpec) -> Result<CpuKvCache> {
        CpuKvCache::new(spec)
    }

    fn new_rope(
        &self,
        freqs: &RopeFrequencies,
        max_positions: usize,
        style: RopeStyle,
    ) -> Result<CpuRope> {
        Ok(CpuRope::new(freqs, max_positions, style))
    }

    fn prepare_batch(&self, b: &AttentionBatch<'_>) -> Result<CpuBatch> {
        Ok(CpuBatch {
            input_ids: b.input_ids.to_vec(),
            positions: b.positions.to_vec(),
            slot_mapping: b.slot_mapping.to_vec(),
            query_start_loc: b.query_start_loc.to_vec(),
            seq_lens: b.seq_lens.to_vec(),
            block_tables: b.block_tables.to_vec(),
            max_blocks_per_seq: b.max_blocks_per_seq,
            logits_indices: b.logits_indices.to_vec(),
        })
    }

    fn embedding(
        &self,
        table: &CpuWeight,
        batch: &CpuBatch,
        out: &mut CpuActivations,
    ) -> Result<()> {
        let cols = out.cols;
        let dst = out.rows_mut(batch.num_tokens(), "embedding")?;
        elementwise::embedding(&self.pool, table, &batch.input_ids, cols, dst)
    }

    fn rms_norm(
        &self,
        x: &CpuActivations,
        weight: &CpuWeight,
        eps: f32,
        rows: usize,
        out: &mut CpuActivations,
    ) -> Result<()> {
        let w = weight.as_vector("rms_norm")?;
        let src = x.rows(rows, "rms_norm input")?;
        let dst = out.rows_mut(rows, "rms_norm output")?;
        norm::rms_norm(&self.pool, src, w, eps, dst)
    }

    fn add_rms_norm(
        &self,
        residual: &mut CpuActivations,
        x: &CpuActivations,
        weight: &CpuWeight,
        eps: f32,
        rows: usize,
        out: &mut CpuActivations,
    ) -> Result<()> {
        let w = weight.as_vector("add_rms_norm")?;
        let res = residual.rows_mut(rows, "residual")?;
        let src = x.rows(rows, "add_rms_norm input")?;
        let dst = out.rows_mut(rows, "add_rms_norm output")?;
        norm::add_rms_norm(&self.pool, res, src, w, eps, dst)
    }

    fn head_rms_norm(
        &self,
        x: &mut CpuActivations,
        weight: &CpuWeight,
        eps: f32,
        head_dim: usize,
        rows: usize,
    ) -> Result<()> {
        let w = weight.as_vector("head_rms_norm")?;
        let data = x.rows_mut(rows, "head_rms_norm")?;
        norm::head_rms_norm(&self.pool, data, w, eps, head_dim)
    }

    fn linear(
        &self,
        x: &CpuActivations,
        weight: &CpuWeight,
        bias: Option<&CpuWeight>,
        rows: usize,
        out: &mut CpuActivations,
    ) -> Result<()> {
        if x.cols != weight.cols() || out.cols != weight.rows() {
            return Err(BackendError::Shape {
                what: "linear".into(),
                expected: format!(
                    "[{rows}, {}] · [{}, {}]ᵀ",
                    weight.cols(),
                    weight.rows(),
                    weight.cols()
                ),
                got: format!("[{rows}, {}] into [{rows}, {}]", x.cols, out.cols),
            });
        }
        let bias = bias.map(|b| b.as_vector("linear bias")).transpose()?;
        let src = x.rows(rows, "linear input")?;
        let dst = out.rows_mut(rows, "linear output")?;
        // `x` and `out` are distinct (one borrowed shared, one exclusive), so the cache of `x`
        // stays valid across this call.
        let mut x_q = x.quantized.try_borrow_mut().ok();
        linear::linear(&self.pool, src, x_q.as_deref_mut(), rows, weight, bias, dst)
    }

    fn rotary(
        &self,
        rope: &CpuRope,
        batch: &CpuBatch,
        q: &mut CpuActivations,
        k: &mut CpuActivations,
        head_dim: usize,
    ) -> Result<()> {
        let n = batch.num_tokens();
        let (qc, kc) = (q.cols, k.cols);
        let qd = q.rows_mut(n, "rotary q")?;
        rope.apply(qd, qc, head_dim, &batch.positions)?;
        let kd = k.rows_mut(n, "rotary k")?;
        rope.apply(kd, kc, head_dim, &batch.positions)
    }

    fn write_kv(
        &self,
        cache: &mut CpuKvCache,
        layer: usize,
        batch: &CpuBatch,
        k: &CpuActivations,
        v: &CpuActivations,
    ) -> Result<()> {
        let n = batch.num_tokens();
        cache.write(layer, &batch.slot_mapping, k.rows(n, "k")?, v.rows(n, "v")?)
    }

    fn attention(
        &self,
        cache: &CpuKvCache,
        layer: usize,
        batch: &CpuBatch,
        params: &AttentionParams,
        q: &CpuActivations,
        out: &mut CpuActivations,
    ) -> Result<()> {
        let n = batch.num_tokens();
        let qd = q.rows(n, "attention q")?;
        let od = out.rows_mut(n, "attention output")?;
        let order = match self.numerics {
            CpuNumerics::Fast => attention::AttentionOrder::Fast,
            CpuNumerics::LlamaCpp => attention::AttentionOrder::LlamaCpp,
        };
        attention::paged_attention(&self.pool, cache, layer, batch, params, order, qd, od)
    }

    fn silu_mul(
        &self,
        gate: &CpuActivations,
        up: &CpuActivations,
        rows: usize,
        out: &mut CpuActivations,
    ) -> Result<()> {
        let g = gate.rows(rows, "silu gate")?;
        let u = up.rows(rows, "silu up")?;
        let o = out.rows_mut(rows, "silu output")?;
        elementwise::silu_mul(&self.pool, g, u, o);
        Ok(())
    }

    fn gather_logit_rows(
        &self,
        x: &CpuActivations,
        batch: &CpuBatch,
        out: &mut CpuActivations,
    ) -> Result<()> {
        let cols = x.cols;
        let src = x.rows(batch.num_tokens(), "gather input")?;
        let dst = out.rows_mut(batch.logits_indices.len(), "gather output")?;
        for (i, &r) in batch.logits_indices.iter().enumerate() {
            let r = r as usize;
            let row = src
                .get(r * cols..(r + 1) * cols)
                .ok_or_else(|| BackendError::Batch(format!("logits index {r} out of range")))?;
            dst[i * cols..(i + 1) * cols].copy_from_slice(row);
        }
        Ok(())
    }

    fn to_host(&self, x: &CpuActivations, rows: usize) -> Result<Vec<f32>> {
        Ok(x.rows(rows, "to_host")?.to_vec())
    }

    fn to_host_into(&self, x: &CpuActivations, rows: usize, out: &mut Vec<f32>) -> Result<()> {
        let src = x.rows(rows, "to_host")?;
        out.clear();
        out.extend_from_slice(src);
        Ok(())
    }
}
