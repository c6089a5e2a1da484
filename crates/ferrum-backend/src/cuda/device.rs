//! Finding a CUDA device without assuming one exists.
//!
//! Invariant: nothing here panics or aborts on a machine without the driver or a GPU; cudarc
//! loads each library on first use and panics when it is missing, so every library is checked
//! for presence before any call into it.

use super::CudaError;

/// What start-up needs to know about the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaDeviceInfo {
    pub ordinal: usize,
    pub name: String,
    /// Compute capability as `major * 10 + minor` (90 for an H100).
    pub arch: u32,
    pub total_memory: u64,
}

/// Whether `libcuda` can be loaded at all (cheap; used by `--device auto`).
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Checks the driver, the device and the libraries the backend calls, in that order, and
/// describes device `ordinal`.
pub fn probe(ordinal: usize) -> Result<CudaDeviceInfo, CudaError> {
    if !driver_present() {
        return Err(CudaError::NoDriver);
    }
    let count = cudarc::driver::CudaContext::device_count()
        .map_err(|e| CudaError::NoDevice(e.to_string()))?;
    if count <= 0 {
        return Err(CudaError::NoDevice("the driver reports no GPU".into()));
    }
    if ordinal >= count as usize {
        return Err(CudaError::NoDevice(format!(
            "device {ordinal} asked for, the driver reports {count}"
        )));
    }
    // SAFETY: as above, dlopen attempts only.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(CudaError::MissingLibrary {
            lib: "libnvrtc.so",
            hint: "install the CUDA runtime compiler (cuda-nvrtc) and add its lib folder to LD_LIBRARY_PATH",
        });
    }
    // SAFETY: as above.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(CudaError::MissingLibrary {
            lib: "libcublas.so",
            hint: "install cuBLAS (libcublas) and add its lib folder to LD_LIBRARY_PATH",
        });
    }
    let ctx = cudarc::driver::CudaContext::new(ordinal)?;
    let (major, minor) = ctx.compute_capability()?;
    if major < 8 {
        return Err(CudaError::OldDevice { major, minor });
    }
    Ok(CudaDeviceInfo {
        ordinal,
        name: ctx.name()?,
        arch: (major * 10 + minor) as u32,
        total_memory: ctx.total_mem()? as u64,
    })
}
