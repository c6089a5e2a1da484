//! Weight upload: checkpoint bytes to the backend's element type on the device through pinned
//! staging buffers.
//!
//! Reading a memory-mapped checkpoint, converting it and copying it from pageable memory are
//! three serial passes at a few GB/s each; for an 8B model that is most of the start-up time.
//! Here host threads read and convert straight into page-locked memory, and the device copies
//! one staging buffer while the threads fill the other.
//!
//! Invariants:
//! - A staging buffer is written only after the event recorded behind its last copy has
//!   completed; the checkpoint bytes are no longer needed once `upload` returns.
//! - Copies are ordered on the backend's stream, so every op enqueued later sees the weight.
//! - Dropping the staging waits for its copies before the page-locked memory is freed.

use std::sync::Arc;

use cudarc::driver::{result, CudaContext, CudaEvent, CudaSlice, CudaStream, PinnedHostSlice};
use ferrum_types::DType;
use rayon::prelude::*;

use super::dtype::CudaDType;
use super::error::CudaError;
use super::tensor::addr;
use crate::{BackendError, HostTensor, Result};

/// `u16` words per staging buffer (32 MiB): one copy takes about a millisecond, long enough
/// to hide the host pass of the next chunk.
const STAGING_ELEMS: usize = 16 << 20;

/// Elements each host thread converts at a time.
const THREAD_ELEMS: usize = 1 << 16;

/// Two page-locked buffers used in turn.
pub(crate) struct Staging {
    bufs: Vec<(PinnedHostSlice<u16>, Option<CudaEvent>)>,
    next: usize,
}

impl Staging {
    pub fn new(ctx: &Arc<CudaContext>) -> std::result::Result<Self, CudaError> {
        let mut bufs = Vec::with_capacity(2);
        for _ in 0..2 {
            // SAFETY: the buffer is only read by copies of the elements written just before.
            // Flags 0: ordinary cached page-locked memory (write-combined memory is slow to
            // fill from several threads).
            let buf = unsafe { ctx.alloc_pinned_with_flags::<u16>(STAGING_ELEMS, 0) }?;
            bufs.push((buf, None));
        }
        Ok(Self { bufs, next: 0 })
    }

    /// Converts `t` to `to` and enqueues its copy into `dst` (at least `t.numel()` elements of
    /// `to`).
    pub fn upload(
        &mut self,
        stream: &Arc<CudaStream>,
        t: &HostTensor<'_>,
        to: CudaDType,
        dst: &mut CudaSlice<u16>,
    ) -> Result<()> {
        t.validate()?;
        let elem_bytes = match t.dtype {
            DType::BF16 | DType::F16 => 2,
            DType::F32 => 4,
            other => {
                return Err(BackendError::UnsupportedDType {
                    op: "CUDA weights (dense bf16/f16/f32 checkpoints only; GGUF quantized \
                         models run with --device cpu)",
                    dtype: other,
                })
            }
        };
        let n = t.numel();
        let words = to.words();
        if dst.len() < n * words {
            return Err(BackendError::Shape {
                what: "weight upload".into(),
                expected: format!("{n} elements"),
                got: format!("{} on the device", dst.len() / words),
            });
        }
        let base = addr(dst, stream);
        let mut start = 0;
        while start < n {
            let len = (STAGING_ELEMS / words).min(n - start);
            let (buf, done) = &mut self.bufs[self.next];
            self.next = (self.next + 1) % 2;
            if let Some(ev) = done.take() {
                ev.synchronize().map_err(CudaError::from)?;
            }
            let host = &mut buf.as_mut_slice().map_err(CudaError::from)?[..len * words];
            let src = &t.data[start * elem_bytes..(start + len) * elem_bytes];
            convert(t.dtype, src, to, host);
            // SAFETY: `dst` holds at least `start + len` elements (checked above) and `host`
            // stays untouched until the event recorded below has completed.
            unsafe {
                result::memcpy_htod_async(
                    base + (start * to.size()) as u64,
                    host,
                    stream.cu_stream(),
                )
            }
            .map_err(CudaError::from)?;
            *done = Some(stream.record_event(None).map_err(CudaError::from)?);
            start += len;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for (_, done) in &self.bufs {
            if let Some(ev) = done {
                let _ = ev.synchronize();
            }
        }
    }
}

/// Little-endian checkpoint values to `to`'s device words (see `dtype.rs`), spread over the
/// rayon pool. A value already in `to` is copied bit for bit.
fn convert(dtype: DType, src: &[u8], to: CudaDType, dst: &mut [u16]) {
    let eb = dtype.block_bytes();
    let words = to.words();
    let same = matches!(
        (dtype, to),
        (DType::BF16, CudaDType::BF16)
            | (DType::F16, CudaDType::F16)
            | (DType::F32, CudaDType::F32)
    );
    dst.par_chunks_mut(THREAD_ELEMS * words)
        .zip(src.par_chunks(THREAD_ELEMS * eb))
        .for_each(|(d, s)| {
            if same {
                for (o, c) in d.iter_mut().zip(s.chunks_exact(2)) {
                    *o = u16::from_le_bytes([c[0], c[1]]);
                }
                return;
            }
            let mut vals = [0.0f32; 256];
            for (dc, sc) in d.chunks_mut(256 * words).zip(s.chunks(256 * eb)) {
                let n = sc.len() / eb;
                for (v, c) in vals.iter_mut().zip(sc.chunks_exact(eb)) {
                    *v = match dtype {
                        DType::F32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                        DType::F16 => half::f16::from_le_bytes([c[0], c[1]]).to_f32(),
                        _ => half::bf16::from_le_bytes([c[0], c[1]]).to_f32(),
                    };
                }
                to.f32_to_words(&vals[..n], dc);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_matches_the_element_rules() {
        let vals = [1.0f32, -2.5, 3.0e-3, 65504.0, 0.0];
        let f32_bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = vec![0u16; vals.len()];
        convert(DType::F32, &f32_bytes, CudaDType::BF16, &mut out);
        let want: Vec<u16> = vals
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_bits())
            .collect();
        assert_eq!(out, want);

        let f16_bytes: Vec<u8> = vals
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        convert(DType::F16, &f16_bytes, CudaDType::BF16, &mut out);
        let want: Vec<u16> = vals
            .iter()
            .map(|&v| half::bf16::from_f32(half::f16::from_f32(v).to_f32()).to_bits())
            .collect();
        assert_eq!(out, want);

        // Odd alignment, as tensors sit at any byte offset of a safetensors file.
        let bf: Vec<u8> = std::iter::once(0u8)
            .chain(
                vals.iter()
                    .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()),
            )
            .collect();
        convert(DType::BF16, &bf[1..], CudaDType::BF16, &mut out);
        let want: Vec<u16> = vals
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_bits())
            .collect();
        assert_eq!(out, want);

        // Into f32 (two words a value) and f16, from each checkpoint type.
        let mut wide = vec![0u16; 2 * vals.len()];
        let mut back = vec![0.0f32; vals.len()];
        convert(DType::F32, &f32_bytes, CudaDType::F32, &mut wide);
        CudaDType::F32.words_to_f32(&wide, &mut back);
        assert_eq!(back, vals);
        convert(DType::BF16, &bf[1..], CudaDType::F32, &mut wide);
        CudaDType::F32.words_to_f32(&wide, &mut back);
        let want: Vec<f32> = vals
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_f32())
            .collect();
        assert_eq!(back, want);
        convert(DType::F32, &f32_bytes, CudaDType::F16, &mut out);
        let want: Vec<u16> = vals
            .iter()
            .map(|&v| half::f16::from_f32(v).to_bits())
            .collect();
        assert_eq!(out, want);
    }
}
