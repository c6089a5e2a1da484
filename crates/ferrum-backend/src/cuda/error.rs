/// Why the CUDA backend could not start or run an op.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error(
        "no CUDA driver: libcuda.so was not found (install the NVIDIA driver, or use --device cpu)"
    )]
    NoDriver,
    #[error("no usable CUDA device: {0} (use --device cpu)")]
    NoDevice(String),
    #[error("the CUDA library {lib} was not found: {hint}")]
    MissingLibrary {
        lib: &'static str,
        hint: &'static str,
    },
    #[error("compute capability {major}.{minor} is below 8.0, the oldest this backend supports (use --device cpu)")]
    OldDevice { major: i32, minor: i32 },
    #[error("compiling the CUDA kernels with NVRTC failed: {0}")]
    Compile(String),
    #[error("CUDA driver: {0}")]
    Driver(String),
    #[error("cuBLAS: {0}")]
    Blas(String),
    #[error("not supported on CUDA: {0}")]
    Unsupported(String),
}

impl From<cudarc::driver::DriverError> for CudaError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        CudaError::Driver(e.to_string())
    }
}

impl From<cudarc::cublas::result::CublasError> for CudaError {
    fn from(e: cudarc::cublas::result::CublasError) -> Self {
        CudaError::Blas(format!("{e:?}"))
    }
}
