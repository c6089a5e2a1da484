//! Linear layers through cuBLAS: operands and result in the backend's element type, f32
//! accumulation (for f32 operands without TF32: the default math mode keeps full precision).

use std::sync::Arc;

use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaSlice, CudaStream};

use super::{CudaDType, CudaError};

/// cuBLAS's workspace: ours, so that a graph capture never sees cuBLAS allocate.
const WORKSPACE_BYTES: usize = 32 << 20;

pub struct Blas {
    inner: CudaBlas,
    _workspace: CudaSlice<u8>,
}

impl Blas {
    pub fn new(stream: Arc<CudaStream>) -> Result<Self, CudaError> {
        let inner = CudaBlas::new(stream.clone())?;
        let workspace = stream.alloc_zeros::<u8>(WORKSPACE_BYTES)?;
        let ptr = super::tensor::addr(&workspace, &stream);
        // SAFETY: the workspace outlives the handle's use (both live in this struct, and the
        // handle is only used through it).
        let status = unsafe {
            cudarc::cublas::sys::cublasSetWorkspace_v2(
                *inner.handle(),
                ptr as *mut std::ffi::c_void,
                WORKSPACE_BYTES,
            )
        };
        if status != cudarc::cublas::sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(CudaError::Driver(format!(
                "setting the cuBLAS workspace: {status:?}"
            )));
        }
        Ok(Self {
            inner,
            _workspace: workspace,
        })
    }

    /// `y[rows, n_out] = x[rows, k] · w[n_out, k]ᵀ` with row-major `dtype` operands at device
    /// addresses `x`, `w`, `y`.
    ///
    /// Row-major `y` is column-major `yᵀ` (`n_out × rows`, leading dimension `n_out`), and
    /// `yᵀ = w · xᵀ`: column-major `w` seen as `k × n_out` transposed, times column-major `xᵀ`.
    #[allow(clippy::too_many_arguments)]
    pub fn linear(
        &self,
        dtype: CudaDType,
        x: u64,
        w: u64,
        y: u64,
        rows: usize,
        k: usize,
        n_out: usize,
    ) -> Result<(), CudaError> {
        let ty = match dtype {
            CudaDType::BF16 => cudaDataType::CUDA_R_16BF,
            CudaDType::F16 => cudaDataType::CUDA_R_16F,
            CudaDType::F32 => cudaDataType::CUDA_R_32F,
        };
        let alpha = 1.0f32;
        let beta = 0.0f32;
        let dim = |v: usize| {
            i32::try_from(v).map_err(|_| CudaError::Unsupported(format!("GEMM dimension {v}")))
        };
        // SAFETY: the caller passes live device buffers of at least the sizes named (checked in
        // `CudaBackend::linear`); alpha and beta outlive the call, which only enqueues work.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.inner.handle(),
                cublasOperation_t::CUBLAS_OP_T,
                cublasOperation_t::CUBLAS_OP_N,
                dim(n_out)?,
                dim(rows)?,
                dim(k)?,
                (&alpha as *const f32).cast(),
                w as *const _,
                ty,
                dim(k)?,
                x as *const _,
                ty,
                dim(k)?,
                (&beta as *const f32).cast(),
                y as *mut _,
                ty,
                dim(n_out)?,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )?;
        }
        Ok(())
    }
}
