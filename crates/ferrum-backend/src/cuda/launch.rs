//! Kernel launches, with programmatic dependent launch (PDL) on cards that have it.
//!
//! Invariants:
//! - With PDL on (sm_90 and newer, unless `FERRUM_CUDA_PDL=0`), a kernel of ours may be
//!   scheduled while the kernel before it on the stream is still running. Every kernel calls
//!   `pdl_wait()` (`griddepcontrol.wait`, `kernels/common.cuh`) before it reads or writes any
//!   buffer another op touches; the only reads before it are of weights, which no op writes,
//!   and of the step's metadata, which the upload wrote before the step's first kernel (a copy
//!   is never overlapped, and each kernel starts only after its predecessor's blocks passed
//!   their wait); decode attention also prefetches into L1, without reading them, the KV rows
//!   that earlier steps wrote. So the overlap hides launch latency and the first loads, and changes no
//!   result.
//! - A kernel may let blocks return before the wait, but at least one block of every launch
//!   waits: the next kernel is released when all blocks have triggered or exited, and only a
//!   block that waited orders it after the kernels before.
//! - The compiler may move loads it takes as invariant (`__ldg`, `const __restrict__`) above
//!   the wait: kernels read earlier kernels' outputs through pointers passed through
//!   `after_wait` or with volatile loads (`ldcg8`), never with `__ldg`. A GEMV that read its
//!   input with `__ldg` after early weight loads did read stale values.
//! - The wait is a no-op for a kernel launched without the attribute (PDL off, or the
//!   preceding op is not a kernel), so one set of kernels serves both.
//! - Arguments are plain scalars (`DeviceRepr`: device addresses, sizes, floats), passed by
//!   address as the driver's `kernelParams` expects.

use std::ffi::c_void;

use cudarc::driver::{sys, CudaFunction, CudaStream, DeviceRepr, DriverError, LaunchConfig};

/// A kernel argument as the driver takes it: the address of its value.
pub(crate) fn param<T: DeviceRepr>(v: &T) -> *mut c_void {
    v as *const T as *mut c_void
}

/// Whether PDL is used on a card of compute capability `arch`.
pub(crate) fn pdl_enabled(arch: u32) -> bool {
    arch >= 90 && std::env::var("FERRUM_CUDA_PDL").map_or(true, |v| v != "0")
}

/// Enqueues `f` on `stream`.
///
/// # Safety
/// `params` holds one pointer per kernel parameter, in order, each to a value of the type the
/// kernel declares, and every device address among them is valid for the accesses the kernel
/// makes (the callers check extents on the host).
pub(crate) unsafe fn launch(
    pdl: bool,
    stream: &CudaStream,
    f: &CudaFunction,
    cfg: LaunchConfig,
    params: &mut [*mut c_void],
) -> Result<(), DriverError> {
    stream.context().bind_to_thread()?;
    // SAFETY: an all-zero attribute is a valid (ignored) value of this plain C union.
    let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
    attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attr.value.programmaticStreamSerializationAllowed = 1;
    let config = sys::CUlaunchConfig {
        gridDimX: cfg.grid_dim.0,
        gridDimY: cfg.grid_dim.1,
        gridDimZ: cfg.grid_dim.2,
        blockDimX: cfg.block_dim.0,
        blockDimY: cfg.block_dim.1,
        blockDimZ: cfg.block_dim.2,
        sharedMemBytes: cfg.shared_mem_bytes,
        hStream: stream.cu_stream(),
        attrs: if pdl { &mut attr } else { std::ptr::null_mut() },
        numAttrs: u32::from(pdl),
    };
    // SAFETY: the caller's contract; `config` and `attr` outlive the call.
    unsafe {
        sys::cuLaunchKernelEx(
            &config,
            f.cu_function(),
            params.as_mut_ptr(),
            std::ptr::null_mut(),
        )
    }
    .result()
}

/// `FERRUM_CUDA_SKIP_KERNELS`: a comma list of launch names (`attn_decode`, `add_rms_norm`,
/// ...), a name followed by a grid width picking one shape (`gemv640`). Those launches are
/// not made, so the outputs are wrong; what it is for is timing: a step recorded without a
/// kernel class costs what the rest costs, and the difference is that class's share of the
/// pipelined step, which per-kernel profiles do not show.
pub(super) fn skipped_kernels() -> Vec<String> {
    let skip: Vec<String> = std::env::var("FERRUM_CUDA_SKIP_KERNELS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if !skip.is_empty() {
        tracing::warn!(
            kernels = skip.join(","),
            "FERRUM_CUDA_SKIP_KERNELS: these launches are left out, every output is wrong \
             (a timing diagnostic)"
        );
    }
    skip
}

impl super::CudaBackend {
    /// Whether the launch of `name` with `cfg` is left out (`FERRUM_CUDA_SKIP_KERNELS`).
    pub(super) fn skips(&self, name: &str, cfg: &LaunchConfig) -> bool {
        !self.skip.is_empty()
            && self.skip.iter().any(|s| {
                s == name
                    || s.strip_prefix(name)
                        .is_some_and(|w| w == cfg.grid_dim.0.to_string())
            })
    }
}
