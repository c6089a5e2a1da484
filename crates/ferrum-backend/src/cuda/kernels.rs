//! Our CUDA kernels: `.cu` sources embedded in the binary, compiled with NVRTC at start-up for
//! the card's architecture and the backend's element type, and cached on disk as PTX.
//!
//! Invariants:
//! - The sources include no CUDA header (16-bit floats travel as raw bits, see `common.cuh`),
//!   so NVRTC needs no include path and the toolkit's headers are not a run-time dependency.
//! - One module per element type: the same sources with `FERRUM_ELEM` defined, and the same
//!   kernel names, except that the f32 module has no `attn_prefill_256` (see `attention.cu`).
//! - A cache entry is named by the SHA-256 of (sources, compile options, NVRTC version) and the
//!   target architecture; a changed kernel, option or compiler never reuses an old entry. Entries
//!   are written to a temporary name and renamed, so a reader never sees half a file.
//! - A cache that cannot be read or written only costs a compile; it never fails start-up.

use std::path::PathBuf;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaModule};
use cudarc::nvrtc::{CompileOptions, Ptx};
use sha2::{Digest, Sha256};

use super::{CudaDType, CudaError};

/// The kernel sources, concatenated in this order into one compilation unit.
const SOURCES: [(&str, &str); 10] = [
    ("common.cuh", include_str!("kernels/common.cuh")),
    ("embedding.cu", include_str!("kernels/embedding.cu")),
    ("norm.cu", include_str!("kernels/norm.cu")),
    ("rope.cu", include_str!("kernels/rope.cu")),
    ("kv_cache.cu", include_str!("kernels/kv_cache.cu")),
    ("attention.cu", include_str!("kernels/attention.cu")),
    (
        "attention_decode.cu",
        include_str!("kernels/attention_decode.cu"),
    ),
    (
        "attention_reference.cu",
        include_str!("kernels/attention_reference.cu"),
    ),
    ("sampling.cu", include_str!("kernels/sampling.cu")),
    ("gemv.cu", include_str!("kernels/gemv.cu")),
];

/// Head sizes with a fused q/k norm + rotary + KV write kernel (`qk_rope_kv_<D>` in `rope.cu`).
pub const QK_ROPE_KV_HEAD_DIMS: [usize; 3] = [64, 128, 256];

/// Most rows the small-batch linear kernels take (`gemv_<M>`, `gemv_silu_<M>` for M in 1..=8).
pub const GEMV_MAX_ROWS: usize = 8;

/// Most rows of the gate/up·silu GEMV with the RMSNorm folded in (`gemv_silu_norm_<M>`).
pub const GEMV_SILU_NORM_MAX_ROWS: usize = 2;

/// Output rows per block of `gemv_<m>` (`gemv_rows` in `gemv.cu`).
pub fn gemv_block_rows(m: usize) -> usize {
    if m <= 2 {
        4
    } else {
        8
    }
}

/// Output rows per block of `gemv_silu_<m>` (`gemv_silu_rows` in `gemv.cu`).
pub fn gemv_silu_block_rows(m: usize) -> usize {
    if m <= 2 {
        2
    } else {
        4
    }
}

/// Threads per block of those kernels (`GEMV_THREADS` in `gemv.cu`).
pub const GEMV_THREADS: u32 = 128;

/// Head sizes with attention kernel instances (`attn_prefill_<D>`, `attn_decode_<D>` and the
/// reference `paged_attention_<D>`).
pub const ATTENTION_HEAD_DIMS: [usize; 6] = [16, 32, 64, 96, 128, 256];

/// Largest head size with a tiled prefill kernel in the f32 module, which runs it on CUDA cores
/// (`PREFILL_KERNEL` instances in `attention.cu`).
pub const F32_PREFILL_MAX_HEAD_DIM: usize = 128;

/// Queries of one sequence per prefill work item (`PF_ITEM_TOKENS` in `attention.cu`).
pub const PREFILL_ITEM_TOKENS: u32 = 64;

/// The whole compilation unit, with `#line` markers so NVRTC's messages name the right file.
///
/// For kernel work on a GPU machine without a build, `FERRUM_CUDA_KERNELS_DIR` names a folder
/// whose files replace the built-in sources of the same name (the others stay built in); the
/// cache key follows the text, so a changed file is compiled afresh.
pub fn source() -> String {
    let dir = std::env::var_os("FERRUM_CUDA_KERNELS_DIR").map(PathBuf::from);
    let mut s = String::new();
    for (name, text) in SOURCES {
        s.push_str(&format!("#line 1 \"{name}\"\n"));
        match dir.as_ref().map(|d| d.join(name)) {
            Some(p) if p.is_file() => match std::fs::read_to_string(&p) {
                Ok(t) => {
                    tracing::warn!(path = %p.display(), "CUDA kernel source replaced");
                    s.push_str(&t);
                }
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "unreadable; built-in source used");
                    s.push_str(text);
                }
            },
            _ => s.push_str(text),
        }
        s.push('\n');
    }
    s
}

fn options(arch: u32, dtype: CudaDType) -> Vec<String> {
    vec![
        format!("--gpu-architecture=compute_{arch}"),
        format!("-DFERRUM_ELEM={}", dtype.kernel_define()),
        "--std=c++17".into(),
        "--use_fast_math".into(),
        // Keep exact division and square roots where the reference has them.
        "--prec-div=true".into(),
        "--prec-sqrt=true".into(),
    ]
}

fn nvrtc_version() -> String {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the caller checked that the NVRTC library is present (see `device::probe`);
    // the call only writes the two integers.
    let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if r == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        format!("{major}.{minor}")
    } else {
        "unknown".into()
    }
}

/// The cache key: everything that changes the PTX.
pub fn cache_key(arch: u32, dtype: CudaDType) -> String {
    key_of(&source(), arch, dtype)
}

/// The cache key of `src` (the unit [`source`] gives) for `arch` and `dtype`.
fn key_of(src: &str, arch: u32, dtype: CudaDType) -> String {
    let mut h = Sha256::new();
    h.update(src.as_bytes());
    for o in options(arch, dtype) {
        h.update(o.as_bytes());
        h.update([0]);
    }
    h.update(nvrtc_version().as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{dtype}-sm_{arch}")
}

/// `$FERRUM_CACHE_DIR/kernels`, else `$XDG_CACHE_HOME/ferrum/kernels`, else
/// `$HOME/.cache/ferrum/kernels`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("FERRUM_CACHE_DIR") {
        return Some(PathBuf::from(d).join("kernels"));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("ferrum").join("kernels"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ferrum/kernels"))
}

/// Compiles the sources to PTX for `compute_<arch>` and `dtype` with NVRTC.
pub fn compile(arch: u32, dtype: CudaDType) -> Result<String, CudaError> {
    compile_src(source(), arch, dtype)
}

fn compile_src(src: String, arch: u32, dtype: CudaDType) -> Result<String, CudaError> {
    let opts = CompileOptions {
        options: options(arch, dtype),
        name: Some("ferrum_kernels.cu".into()),
        ..CompileOptions::default()
    };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(src, opts)
        .map_err(|e| CudaError::Compile(format!("{e:?}")))?;
    Ok(ptx.to_src())
}

/// PTX for `arch` and `dtype`, from the disk cache or freshly compiled (and then cached).
pub fn ptx_for(arch: u32, dtype: CudaDType) -> Result<String, CudaError> {
    // Built once: with `FERRUM_CUDA_KERNELS_DIR` it reads files and warns.
    let src = source();
    let key = key_of(&src, arch, dtype);
    let path = cache_dir().map(|d| d.join(format!("{key}.ptx")));
    if let Some(p) = &path {
        if let Ok(text) = std::fs::read_to_string(p) {
            tracing::debug!(path = %p.display(), "CUDA kernels from the cache");
            return Ok(text);
        }
    }
    let t = std::time::Instant::now();
    let ptx = compile_src(src, arch, dtype)?;
    tracing::info!(
        arch = format!("sm_{arch}"),
        %dtype,
        ms = t.elapsed().as_millis() as u64,
        "compiled CUDA kernels with NVRTC"
    );
    if let Some(p) = &path {
        if let Err(e) = store(p, &ptx) {
            tracing::warn!(path = %p.display(), error = %e, "could not cache the CUDA kernels");
        }
    }
    Ok(ptx)
}

fn store(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Handles to every kernel of the loaded module.
pub struct Kernels {
    _module: Arc<CudaModule>,
    pub embedding: CudaFunction,
    pub gather_rows: CudaFunction,
    pub rms_norm: CudaFunction,
    pub add_rms_norm: CudaFunction,
    pub head_rms_norm: CudaFunction,
    pub rotary: CudaFunction,
    pub write_kv: CudaFunction,
    pub add_bias: CudaFunction,
    pub silu_mul: CudaFunction,
    pub apply_logit_adjust: CudaFunction,
    pub sample_rows: CudaFunction,
    pub sample_split: CudaFunction,
    pub patch_input_ids: CudaFunction,
    /// One set per entry of [`ATTENTION_HEAD_DIMS`].
    pub attention: Vec<(usize, AttentionKernels)>,
    /// `gemv[M - 1]` for M in 1..=[`GEMV_MAX_ROWS`].
    pub gemv: Vec<CudaFunction>,
    /// `gemv_silu[M - 1]`, likewise.
    pub gemv_silu: Vec<CudaFunction>,
    /// `gemv_norm[M - 1]`: `gemv` with the input's RMSNorm folded in.
    pub gemv_norm: Vec<CudaFunction>,
    /// `gemv_res[M - 1]`: one matrix, its output added into the residual stream.
    pub gemv_res: Vec<CudaFunction>,
    /// `gemv_silu_norm[M - 1]` for M in 1..=[`GEMV_SILU_NORM_MAX_ROWS`].
    pub gemv_silu_norm: Vec<CudaFunction>,
    /// `qk_rope_kv_<D>` for each of [`QK_ROPE_KV_HEAD_DIMS`].
    pub qk_rope_kv: Vec<(usize, CudaFunction)>,
}

/// The attention kernels of one head size (see `kernels/attention.cu` and
/// `kernels/attention_decode.cu`).
pub struct AttentionKernels {
    /// Tiled causal attention for sequences with several queries in the step (`None` where
    /// the module has no instance: the reference kernel serves the whole batch then).
    pub prefill: Option<CudaFunction>,
    /// Sequences with one query: one token and head group per block, the context split in
    /// chunks (merged by the block that finishes a token's last chunk).
    pub decode: CudaFunction,
    /// The decode kernel for one head a block and short contexts (fewer registers, so fewer
    /// rounds of loads).
    pub decode1: CudaFunction,
    /// One block per (token, head); the reference for tests and benchmarks.
    pub reference: CudaFunction,
}

impl Kernels {
    pub fn load(ctx: &Arc<CudaContext>, arch: u32, dtype: CudaDType) -> Result<Self, CudaError> {
        let module = ctx
            .load_module(Ptx::from_src(ptx_for(arch, dtype)?))
            .map_err(|e| CudaError::Driver(format!("loading the kernel module: {e}")))?;
        let f = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| CudaError::Driver(format!("kernel {name}: {e}")))
        };
        let mut attention = Vec::new();
        for d in ATTENTION_HEAD_DIMS {
            attention.push((
                d,
                AttentionKernels {
                    prefill: if dtype == CudaDType::F32 && d > F32_PREFILL_MAX_HEAD_DIM {
                        None
                    } else {
                        Some(f(&format!("attn_prefill_{d}"))?)
                    },
                    decode: f(&format!("attn_decode_{d}"))?,
                    decode1: f(&format!("attn_decode1_{d}"))?,
                    reference: f(&format!("paged_attention_{d}"))?,
                },
            ));
        }
        let family = |name: &str, max: usize| {
            (1..=max)
                .map(|m| f(&format!("{name}_{m}")))
                .collect::<Result<Vec<_>, _>>()
        };
        let gemv = family("gemv", GEMV_MAX_ROWS)?;
        let gemv_silu = family("gemv_silu", GEMV_MAX_ROWS)?;
        let gemv_norm = family("gemv_norm", GEMV_MAX_ROWS)?;
        let gemv_res = family("gemv_res", GEMV_MAX_ROWS)?;
        let gemv_silu_norm = family("gemv_silu_norm", GEMV_SILU_NORM_MAX_ROWS)?;
        let qk_rope_kv = QK_ROPE_KV_HEAD_DIMS
            .iter()
            .map(|&d| Ok((d, f(&format!("qk_rope_kv_{d}"))?)))
            .collect::<Result<Vec<_>, CudaError>>()?;
        Ok(Self {
            qk_rope_kv,
            gemv,
            gemv_silu,
            gemv_norm,
            gemv_res,
            gemv_silu_norm,
            embedding: f("embedding")?,
            gather_rows: f("gather_rows")?,
            rms_norm: f("rms_norm")?,
            add_rms_norm: f("add_rms_norm")?,
            head_rms_norm: f("head_rms_norm")?,
            rotary: f("rotary")?,
            write_kv: f("write_kv")?,
            add_bias: f("add_bias")?,
            silu_mul: f("silu_mul")?,
            apply_logit_adjust: f("apply_logit_adjust")?,
            sample_rows: f("sample_rows")?,
            sample_split: f("sample_split")?,
            patch_input_ids: f("patch_input_ids")?,
            attention,
            _module: module,
        })
    }

    pub fn attention_for(&self, head_dim: usize) -> Option<&AttentionKernels> {
        self.attention
            .iter()
            .find(|(d, _)| *d == head_dim)
            .map(|(_, f)| f)
    }
}
