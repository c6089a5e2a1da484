//! CUDA backend: weights, activations and the KV cache in one element type (bf16 by default,
//! f16 or f32 with `--dtype`) with f32 accumulation, cuBLAS for linear layers, our own
//! NVRTC-compiled kernels for everything else (see `kernels/`).
//!
//! Invariants:
//! - All work runs in order on one stream; only `to_host` waits for the device. Ops check
//!   shapes and metadata bounds on the host before enqueueing, so a bad batch is an error,
//!   never an out-of-bounds access on the device.
//! - The libraries are loaded at run time (cudarc `dynamic-loading`): the binary builds and
//!   runs without CUDA, and [`device::probe`] reports what is missing before any call into it.
//! - Numerics follow Hugging Face transformers in the same dtype: every op rounds to the
//!   element type where the reference stores a tensor, and accumulates in f32 in between.

mod blas;
pub mod device;
mod dtype;
mod error;
mod graph;
mod host_ring;
mod kernels;
mod launch;
mod profile;
mod sampling;
mod tensor;
mod upload;

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream, LaunchConfig};

use crate::{
    AttentionBatch, AttentionParams, Backend, BackendError, HostTensor, KvCacheSpec, LogitAdjust,
    Result, RopeFrequencies, RopeStyle, RowSampling,
};

pub use device::{driver_present, probe, CudaDeviceInfo};
pub use dtype::CudaDType;
pub use error::CudaError;
pub use kernels::{cache_dir as kernel_cache_dir, cache_key as kernel_cache_key};

/// Whether the NVRTC library can be loaded (kernels compile without a GPU).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Compiles every kernel of `dtype`'s module to PTX for compute capability `arch` (e.g. 80,
/// 90) without touching a device or the cache. Needs only the NVRTC library.
pub fn compile_kernels(arch: u32, dtype: CudaDType) -> std::result::Result<String, CudaError> {
    if !nvrtc_present() {
        return Err(CudaError::MissingLibrary {
            lib: "libnvrtc.so",
            hint: "install the CUDA runtime compiler (cuda-nvrtc)",
        });
    }
    kernels::compile(arch, dtype)
}
pub use tensor::{CudaActivations, CudaBatch, CudaKvCache, CudaRope, CudaWeight};

use tensor::addr;

/// Enqueues kernel `$f` with the given arguments; evaluates to `Result<()>`.
///
/// Every use passes the kernel's exact parameter list (see `kernels/*.cu`) with device
/// addresses whose extents the caller checked on the host. A launch named in
/// `FERRUM_CUDA_SKIP_KERNELS` (a timing diagnostic) is not made.
macro_rules! launch {
    ($self:ident, $f:expr, $name:expr, $cfg:expr, $($arg:expr),* $(,)?) => {{
        let cfg = $cfg;
        if $self.skips($name, &cfg) {
            Ok(())
        } else {
            // The parameter array lives inside the call's expression, so that temporaries
            // among the arguments (`&u32::from(flag)`) outlive the launch that reads them.
            // SAFETY: see the macro's documentation.
            unsafe {
                $crate::cuda::launch::launch(
                    $self.pdl,
                    &$self.stream,
                    $f,
                    cfg,
                    &mut [$( $crate::cuda::launch::param($arg) ),*],
                )
            }
            .map_err(|e| launch_err($name, e))
        }
    }};
}

// After `launch!`, which it uses.
mod attention;
mod linear;
mod norm;
mod residual;
mod rope_kv;
mod step_batch;

/// Threads per block of the row-wise kernels.
const ROW_THREADS: u32 = 256;

fn grid(x: usize, y: usize, threads: u32) -> Result<LaunchConfig> {
    let g = |v: usize| {
        u32::try_from(v).map_err(|_| BackendError::Batch(format!("grid dimension {v} too large")))
    };
    Ok(LaunchConfig {
        grid_dim: (g(x)?, g(y)?, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    })
}

fn as_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| BackendError::Batch(format!("{what} {v} exceeds u32")))
}

fn launch_err(name: &str, e: cudarc::driver::DriverError) -> BackendError {
    CudaError::Driver(format!("launching {name}: {e}")).into()
}

/// The CUDA backend on one device.
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: blas::Blas,
    k: kernels::Kernels,
    info: CudaDeviceInfo,
    dtype: CudaDType,
    profile: Option<profile::Profile>,
    graphs: graph::GraphState,
    /// Programmatic dependent launch for our kernels (see `launch.rs`).
    pdl: bool,
    /// Steps of at most `kernels::GEMV_MAX_ROWS` rows use our GEMV kernels rather than cuBLAS
    /// (`FERRUM_CUDA_GEMV=0` turns them off, to compare).
    small_gemv: bool,
    /// Decode layers add projections into the residual stream and fold RMSNorm into the next
    /// projections (`residual.rs`; `FERRUM_CUDA_FUSED_NORM=0` turns it off, to compare).
    fused_norm: bool,
    /// Greedy and temperature-only rows are sampled by `sample_split`, spread over the card
    /// (`sampling.rs`; `FERRUM_CUDA_SPLIT_SAMPLING=0` leaves every row to `sample_rows`).
    split_sampling: bool,
    /// Made at the first weight upload and kept (64 MiB of page-locked host memory).
    staging: std::sync::Mutex<Option<upload::Staging>>,
    /// Kernel launches left out, for diagnosis only (`FERRUM_CUDA_SKIP_KERNELS`, see
    /// `skips`); empty otherwise.
    skip: Vec<String>,
    /// The sampler's persistent buffers (`sampling.rs`).
    sampler: std::sync::Mutex<sampling::SamplerState>,
    /// The host side of each step's metadata upload (`step_batch.rs`).
    step_host: std::sync::Mutex<step_batch::StepHost>,
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        if let Some(p) = &self.profile {
            // Asked for by name (FERRUM_CUDA_PROFILE): shown whatever the log level.
            eprintln!("{}", p.report());
        }
    }
}

impl CudaBackend {
    /// Opens device `ordinal` in bf16, compiles (or loads cached) kernels and creates the
    /// cuBLAS handle.
    pub fn new(ordinal: usize) -> std::result::Result<Self, CudaError> {
        Self::with_dtype(ordinal, CudaDType::BF16)
    }

    /// As [`CudaBackend::new`], computing in `dtype`.
    pub fn with_dtype(ordinal: usize, dtype: CudaDType) -> std::result::Result<Self, CudaError> {
        let t = std::time::Instant::now();
        let info = probe(ordinal)?;
        let ctx = CudaContext::new(ordinal)?;
        // SAFETY: the backend uses a single stream, so cudarc's cross-stream event tracking is
        // not needed; disabling it removes an event record per buffer use.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream()?;
        let blas = blas::Blas::new(stream.clone())?;
        let k = kernels::Kernels::load(&ctx, info.arch, dtype)?;
        tracing::info!(
            device = %info.name,
            %dtype,
            seconds = format!("{:.2}", t.elapsed().as_secs_f64()),
            "CUDA context, kernels and cuBLAS ready"
        );
        Ok(Self {
            ctx,
            stream,
            blas,
            k,
            pdl: launch::pdl_enabled(info.arch),
            info,
            dtype,
            profile: profile::Profile::from_env(),
            graphs: graph::GraphState::default(),
            staging: std::sync::Mutex::new(None),
            sampler: std::sync::Mutex::new(sampling::SamplerState::default()),
            step_host: std::sync::Mutex::new(step_batch::StepHost::default()),
            small_gemv: std::env::var("FERRUM_CUDA_GEMV").map_or(true, |v| v != "0"),
            fused_norm: std::env::var("FERRUM_CUDA_FUSED_NORM").map_or(true, |v| v != "0"),
            split_sampling: std::env::var("FERRUM_CUDA_SPLIT_SAMPLING").map_or(true, |v| v != "0"),
            skip: launch::skipped_kernels(),
        })
    }

    pub fn info(&self) -> &CudaDeviceInfo {
        &self.info
    }

    pub fn dtype(&self) -> CudaDType {
        self.dtype
    }

    /// `(free, total)` device memory in bytes, as the driver reports it now.
    pub fn memory_info(&self) -> Result<(u64, u64)> {
        self.stream.synchronize().map_err(CudaError::from)?;
        let (free, total) = self.ctx.mem_get_info().map_err(CudaError::from)?;
        Ok((free as u64, total as u64))
    }

    /// Waits for every enqueued op.
    pub fn synchronize(&self) -> Result<()> {
        Ok(self.stream.synchronize().map_err(CudaError::from)?)
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// `[rows, cols]` activations holding `data` rounded to the element type (tests and tools
    /// feed the device-side ops with it).
    pub fn activations_from_host(
        &self,
        rows: usize,
        cols: usize,
        data: &[f32],
    ) -> Result<CudaActivations> {
        if data.len() != rows * cols {
            return Err(BackendError::Shape {
                what: "activations_from_host".into(),
                expected: format!("{rows}×{cols} values"),
                got: data.len().to_string(),
            });
        }
        let mut bits = vec![0u16; data.len() * self.dtype.words()];
        self.dtype.f32_to_words(data, &mut bits);
        let mut a = self.new_activations(rows, cols)?;
        self.stream
            .memcpy_htod(&bits, &mut a.data)
            .map_err(CudaError::from)?;
        Ok(a)
    }

    /// A zeroed buffer of `n` elements (`n · words` `u16` words, see `dtype.rs`).
    fn alloc_elems(&self, n: usize, what: &str) -> Result<cudarc::driver::CudaSlice<u16>> {
        let words = n
            .checked_mul(self.dtype.words())
            .ok_or_else(|| BackendError::OutOfMemory(format!("{what}: {n} elements")))?;
        self.stream.alloc_zeros::<u16>(words.max(1)).map_err(|e| {
            BackendError::OutOfMemory(format!(
                "{what}: {} MiB on {}: {e}",
                (2 * words) >> 20,
                self.info.name
            ))
        })
    }

    /// Times the op named by `name()` when `FERRUM_CUDA_PROFILE` is set (see `profile.rs`).
    fn timer(&self, name: impl FnOnce() -> String) -> Option<profile::OpTimer<'_>> {
        self.profile
            .as_ref()
            .filter(|_| !self.graphs.is_capturing())
            .map(|p| profile::OpTimer::start(p, &self.stream, name()))
    }

    /// Refuses a batch whose metadata a later `prepare_batch` has overwritten (one step's
    /// metadata lives on the device at a time).
    pub(crate) fn live(&self, batch: &CudaBatch) -> Result<()> {
        if batch.base != 0 && batch.generation != self.graphs.generation() {
            return Err(BackendError::Batch(
                "step metadata replaced by a later prepare_batch; prepare a batch right before \
                 its ops"
                    .into(),
            ));
        }
        Ok(())
    }

    fn a(&self, s: &cudarc::driver::CudaSlice<u16>) -> u64 {
        addr(s, &self.stream)
    }

    fn check_vector(&self, w: &CudaWeight, len: usize, what: &str) -> Result<()> {
        if w.numel() != len {
            return Err(BackendError::Shape {
                what: what.into(),
                expected: format!("{len} elements"),
                got: format!("{}", w.numel()),
            });
        }
        Ok(())
    }
}

impl From<CudaError> for BackendError {
    fn from(e: CudaError) -> Self {
        BackendError::Device(e.to_string())
    }
}

impl Backend for CudaBackend {
    type Weight = CudaWeight;
    type Activations = CudaActivations;
    type KvCache = CudaKvCache;
    type Batch = CudaBatch;
    type Rope = CudaRope;

    fn name(&self) -> String {
        format!(
            "cuda:{} ({}, sm_{}, {:.0} GiB, {})",
            self.info.ordinal,
            self.info.name,
            self.info.arch,
            self.info.total_memory as f64 / (1u64 << 30) as f64,
            self.dtype
        )
    }

    fn load_weight(&self, tensor: &HostTensor<'_>) -> Result<CudaWeight> {
        let (rows, cols) = tensor.matrix_dims();
        let mut data = self.alloc_elems(tensor.numel(), "weight")?;
        let mut staging = self
            .staging
            .lock()
            .map_err(|_| CudaError::Driver("weight staging lock poisoned".into()))?;
        let staging = match &mut *staging {
            Some(s) => s,
            empty => empty.insert(upload::Staging::new(&self.ctx)?),
        };
        staging.upload(&self.stream, tensor, self.dtype, &mut data)?;
        Ok(CudaWeight { data, rows, cols })
    }

    fn new_activations(&self, max_rows: usize, cols: usize) -> Result<CudaActivations> {
        let n = max_rows.checked_mul(cols).ok_or_else(|| {
            BackendError::OutOfMemory(format!("activation buffer {max_rows}×{cols}"))
        })?;
        Ok(CudaActivations {
            data: self.alloc_elems(n, "activations")?,
            cols,
            capacity_rows: max_rows,
        })
    }

    fn new_kv_cache(&self, spec: &KvCacheSpec) -> Result<CudaKvCache> {
        let n = spec
            .num_blocks
            .checked_mul(spec.block_size)
            .and_then(|n| n.checked_mul(spec.num_kv_heads * spec.head_dim))
            .and_then(|n| n.checked_mul(2 * spec.num_layers))
            .ok_or_else(|| BackendError::OutOfMemory(format!("KV cache {spec:?}")))?;
        Ok(CudaKvCache {
            data: self.alloc_elems(n, "KV cache")?,
            spec: *spec,
            elem_bytes: self.dtype.size(),
        })
    }

    fn new_rope(
        &self,
        freqs: &RopeFrequencies,
        max_positions: usize,
        style: RopeStyle,
    ) -> Result<CudaRope> {
        let half = freqs.half();
        let (cos, sin) = freqs.tables(max_positions);
        let up = |v: &[f32]| -> Result<cudarc::driver::CudaSlice<f32>> {
            let v = if v.is_empty() { &[0.0f32][..] } else { v };
            Ok(self.stream.clone_htod(v).map_err(CudaError::from)?)
        };
        Ok(CudaRope {
            cos: up(&cos)?,
            sin: up(&sin)?,
            half,
            max_positions,
            interleaved: style == RopeStyle::Interleaved,
        })
    }

    fn prepare_batch(&self, b: &AttentionBatch<'_>) -> Result<CudaBatch> {
        let _t = self.timer(|| "prepare_batch".into());
        step_batch::upload(self, b)
    }

    fn embedding(
        &self,
        table: &CudaWeight,
        batch: &CudaBatch,
        out: &mut CudaActivations,
    ) -> Result<()> {
        let _t = self.timer(|| "embedding".into());
        self.live(batch)?;
        let n = batch.num_tokens;
        out.check_rows(n, "embedding")?;
        if out.cols != table.cols {
            return Err(BackendError::Shape {
                what: "embedding".into(),
                expected: format!("{} columns", table.cols),
                got: format!("{}", out.cols),
            });
        }
        if n == 0 {
            return Ok(());
        }
        let (o, t) = (self.a(&out.data), self.a(&table.data));
        let ids = batch.at(batch.off.input_ids, &self.stream);
        let (cols, vocab) = (as_u32(table.cols, "cols")?, as_u32(table.rows, "vocab")?);
        launch!(
            self,
            &self.k.embedding,
            "embedding",
            grid(n, 1, ROW_THREADS)?,
            &o,
            &t,
            &ids,
            &cols,
            &vocab
        )
    }

    fn rms_norm(
        &self,
        x: &CudaActivations,
        weight: &CudaWeight,
        eps: f32,
        rows: usize,
        out: &mut CudaActivations,
    ) -> Result<()> {
        self.rms_norm_op(x, weight, eps, rows, out)
    }

    fn add_rms_norm(
        &self,
        residual: &mut CudaActivations,
        x: &CudaActivations,
        weight: &CudaWeight,
        eps: f32,
        rows: usize,
        out: &mut CudaActivations,
    ) -> Result<()> {
        self.add_rms_norm_op(residual, x, weight, eps, rows, out)
    }

    fn head_rms_norm(
        &self,
        x: &mut CudaActivations,
        weight: &CudaWeight,
        eps: f32,
        head_dim: usize,
        rows: usize,
    ) -> Result<()> {
        self.head_rms_norm_op(x, weight, eps, head_dim, rows)
    }

    fn linear(
        &self,
        x: &CudaActivations,
        weight: &CudaWeight,
        bias: Option<&CudaWeight>,
        rows: usize,
        out: &mut CudaActivations,
    ) -> Result<()> {
        self.linear_op(x, weight, bias, rows, out)
    }

    fn linear_qkv(
        &self,
        x: &CudaActivations,
        proj: [(&CudaWeight, Option<&CudaWeight>); 3],
        rows: usize,
        q: &mut CudaActivations,
        k: &mut CudaActivations,
        v: &mut CudaActivations,
    ) -> Result<()> {
        self.linear_qkv_op(x, proj, rows, [q, k, v])
    }

    fn gate_up_silu(
        &self,
        x: &CudaActivations,
        gate: &CudaWeight,
        up: &CudaWeight,
        rows: usize,
        gate_buf: &mut CudaActivations,
        up_buf: &mut CudaActivations,
        out: &mut CudaActivations,
    ) -> Result<()> {
        self.gate_up_silu_op(x, gate, up, rows, gate_buf, up_buf, out)
    }

    fn linear_residual(
        &self,
        x: &CudaActivations,
        weight: &CudaWeight,
        rows: usize,
        delta: &mut CudaActivations,
        residual: &mut CudaActivations,
    ) -> Result<bool> {
        self.linear_residual_op(x, weight, rows, delta, residual)
    }

    fn norm_linear_qkv(
        &self,
        residual: &mut CudaActivations,
        delta: Option<&CudaActivations>,
        norm: (&CudaWeight, f32),
        proj: [(&CudaWeight, Option<&CudaWeight>); 3],
        rows: usize,
        normed: &mut CudaActivations,
        q: &mut CudaActivations,
        k: &mut CudaActivations,
        v: &mut CudaActivations,
    ) -> Result<()> {
        self.norm_linear_qkv_op(residual, delta, norm, proj, rows, normed, [q, k, v])
    }

    fn norm_gate_up_silu(
        &self,
        residual: &mut CudaActivations,
        delta: Option<&CudaActivations>,
        norm: (&CudaWeight, f32),
        gate: &CudaWeight,
        up: &CudaWeight,
        rows: usize,
        normed: &mut CudaActivations,
        gate_buf: &mut CudaActivations,
        up_buf: &mut CudaActivations,
        out: &mut CudaActivations,
    ) -> Result<()> {
        self.norm_gate_up_silu_op(
            residual,
            delta,
            norm,
            gate,
            up,
            rows,
            normed,
            [gate_buf, up_buf, out],
        )
    }

    fn rotary(
        &self,
        rope: &CudaRope,
        batch: &CudaBatch,
        q: &mut CudaActivations,
        k: &mut CudaActivations,
        head_dim: usize,
    ) -> Result<()> {
        self.rotary_op(rope, batch, q, k, head_dim)
    }

    fn qk_rope_write_kv(
        &self,
        rope: &CudaRope,
        batch: &CudaBatch,
        q: &mut CudaActivations,
        k: &mut CudaActivations,
        v: &CudaActivations,
        qk_norm: Option<(&CudaWeight, &CudaWeight, f32)>,
        head_dim: usize,
        rows: usize,
        cache: &mut CudaKvCache,
        layer: usize,
    ) -> Result<()> {
        self.qk_rope_write_kv_op(rope, batch, q, k, v, qk_norm, head_dim, rows, cache, layer)
    }

    fn write_kv(
        &self,
        cache: &mut CudaKvCache,
        layer: usize,
        batch: &CudaBatch,
        k: &CudaActivations,
        v: &CudaActivations,
    ) -> Result<()> {
        self.write_kv_op(cache, layer, batch, k, v)
    }

    fn attention(
        &self,
        cache: &CudaKvCache,
        layer: usize,
        batch: &CudaBatch,
        params: &AttentionParams,
        q: &CudaActivations,
        out: &mut CudaActivations,
    ) -> Result<()> {
        let _t = self.timer(|| {
            format!(
                "attention (≤{} tokens, ≤{} seqs)",
                batch.num_tokens.next_power_of_two(),
                batch.num_seqs.next_power_of_two()
            )
        });
        let a = self.attention_args(cache, layer, batch, params, q, out)?;
        if batch.num_tokens == 0 {
            return Ok(());
        }
        self.tiled_attention(batch, params, &a)
    }

    fn silu_mul(
        &self,
        gate: &CudaActivations,
        up: &CudaActivations,
        rows: usize,
        out: &mut CudaActivations,
    ) -> Result<()> {
        let _t = self.timer(|| "silu_mul".into());
        if gate.cols != up.cols || out.cols != gate.cols {
            return Err(BackendError::Shape {
                what: "silu_mul".into(),
                expected: format!("{} columns each", gate.cols),
                got: format!("{} and {}", up.cols, out.cols),
            });
        }
        gate.check_rows(rows, "silu gate")?;
        up.check_rows(rows, "silu up")?;
        out.check_rows(rows, "silu output")?;
        let total = rows * gate.cols;
        if total == 0 {
            return Ok(());
        }
        let (o, g, u) = (self.a(&out.data), self.a(&gate.data), self.a(&up.data));
        let n = total as u64;
        let blocks = total.div_ceil(ROW_THREADS as usize).min(65_535);
        launch!(
            self,
            &self.k.silu_mul,
            "silu_mul",
            grid(blocks, 1, ROW_THREADS)?,
            &o,
            &g,
            &u,
            &n
        )
    }

    fn gather_logit_rows(
        &self,
        x: &CudaActivations,
        batch: &CudaBatch,
        out: &mut CudaActivations,
    ) -> Result<()> {
        let _t = self.timer(|| "gather_logit_rows".into());
        self.live(batch)?;
        let m = batch.num_logits;
        if x.cols != out.cols {
            return Err(BackendError::Shape {
                what: "gather_logit_rows".into(),
                expected: format!("{} columns", x.cols),
                got: out.cols.to_string(),
            });
        }
        x.check_rows(batch.num_tokens, "gather input")?;
        out.check_rows(m, "gather output")?;
        if m == 0 {
            return Ok(());
        }
        let (o, i) = (self.a(&out.data), self.a(&x.data));
        let idx = batch.at(batch.off.logits_indices, &self.stream);
        let cols = as_u32(x.cols, "cols")?;
        launch!(
            self,
            &self.k.gather_rows,
            "gather_rows",
            grid(m, 1, ROW_THREADS)?,
            &o,
            &i,
            &idx,
            &cols
        )
    }

    fn to_host(&self, x: &CudaActivations, rows: usize) -> Result<Vec<f32>> {
        let _t = self.timer(|| format!("to_host (≤{} rows)", rows.next_power_of_two()));
        x.check_rows(rows, "to_host")?;
        let n = rows * x.cols;
        if n == 0 {
            return Ok(Vec::new());
        }
        let w = self.dtype.words();
        let bits = self
            .stream
            .clone_dtoh(&x.data.slice(..n * w))
            .map_err(CudaError::from)?;
        // Batched logits are tens of millions of values: widen them on every core.
        use rayon::prelude::*;
        let mut out = vec![0.0f32; n];
        out.par_chunks_mut(1 << 16)
            .zip(bits.par_chunks((1 << 16) * w))
            .for_each(|(o, b)| self.dtype.words_to_f32(b, o));
        Ok(out)
    }

    fn rows_to_host(&self, x: &CudaActivations, rows: &[usize]) -> Result<Vec<f32>> {
        let _t = self.timer(|| "rows_to_host".into());
        let w = self.dtype.words();
        let mut out = vec![0.0f32; rows.len() * x.cols];
        let mut bits = vec![0u16; x.cols * w];
        for (&r, o) in rows.iter().zip(out.chunks_exact_mut(x.cols.max(1))) {
            x.check_rows(r + 1, "rows_to_host")?;
            let src = x.data.slice(r * x.cols * w..(r + 1) * x.cols * w);
            self.stream
                .memcpy_dtoh(&src, &mut bits)
                .map_err(CudaError::from)?;
            self.synchronize()?;
            self.dtype.words_to_f32(&bits, o);
        }
        Ok(out)
    }

    fn samples_on_device(&self) -> bool {
        true
    }

    fn supports_graphs(&self) -> bool {
        // The per-op profile synchronizes between ops, which a capture forbids.
        self.profile.is_none()
    }

    fn graph_begin(&self, key: usize) -> Result<()> {
        self.graphs.begin(&self.stream, key, &self.info.name)
    }

    fn graph_end(&self, keep: bool) -> Result<()> {
        self.graphs.end(&self.stream, keep)
    }

    fn graph_replay(&self, key: usize) -> Result<bool> {
        let _t = self.timer(|| format!("graph replay (bucket {key})"));
        self.graphs.replay(key)
    }

    fn sample(
        &self,
        logits: &mut CudaActivations,
        rows: &[RowSampling],
        adjust: &[LogitAdjust],
    ) -> Result<Vec<u32>> {
        let _t = self.timer(|| format!("sample (≤{} rows)", rows.len().next_power_of_two()));
        sampling::sample(self, logits, rows, adjust)
    }

    fn supports_deferred_sampling(&self) -> bool {
        true
    }

    fn sample_deferred(
        &self,
        logits: &mut CudaActivations,
        rows: &[RowSampling],
        adjust: &[LogitAdjust],
    ) -> Result<u64> {
        let _t = self.timer(|| format!("sample (≤{} rows)", rows.len().next_power_of_two()));
        sampling::sample_deferred(self, logits, rows, adjust)
    }

    fn wait_sampled(&self, ticket: u64, out: &mut Vec<u32>) -> Result<()> {
        sampling::wait_sampled(self, ticket, out)
    }

    fn patch_input_ids(&self, batch: &CudaBatch, patches: &[[u32; 2]]) -> Result<()> {
        let _t = self.timer(|| "patch_input_ids".into());
        sampling::patch_input_ids(self, batch, patches)
    }
}
