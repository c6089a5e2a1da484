//! Page-locked staging for the small uploads of every step (step metadata, sampling
//! parameters, input patches).
//!
//! A copy from pageable memory may wait for the stream to drain before it returns, which would
//! keep the host from preparing step N+1 while the device runs step N (async scheduling). From
//! page-locked memory the copy is only queued. Invariant: two buffers alternate, and a buffer is
//! rewritten only after the event recorded behind its previous copy has completed, so a queued
//! copy never reads words of a later step.

use std::sync::Arc;

use cudarc::driver::{result, CudaContext, CudaEvent, CudaStream, PinnedHostSlice};

use super::CudaError;

#[derive(Default)]
pub(super) struct HostRing {
    bufs: [Option<(PinnedHostSlice<u32>, CudaEvent)>; 2],
    next: usize,
}

impl HostRing {
    /// Queues a copy of `host` to device address `dst`, which must hold `host.len()` words
    /// and stay valid until the copy has run (stream order).
    pub fn upload(
        &mut self,
        ctx: &Arc<CudaContext>,
        stream: &Arc<CudaStream>,
        host: &[u32],
        dst: u64,
    ) -> Result<(), CudaError> {
        if host.is_empty() {
            return Ok(());
        }
        let slot = self.next;
        self.next ^= 1;
        if self.bufs[slot]
            .as_ref()
            .is_none_or(|(b, _)| b.len() < host.len())
        {
            let want = host.len().next_power_of_two().max(4096);
            // SAFETY: page-locked memory of `want` words, cached (the host writes and the copy
            // engine reads it); only the words written below are copied.
            let buf = unsafe { ctx.alloc_pinned_with_flags::<u32>(want, 0) }?;
            let ev = ctx.new_event(None)?;
            // Recorded once so that the first wait on it returns.
            ev.record(stream)?;
            self.bufs[slot] = Some((buf, ev));
        }
        let Some((buf, ev)) = self.bufs[slot].as_mut() else {
            return Err(CudaError::Driver("staging buffer missing".into()));
        };
        ev.synchronize()?;
        let words = &mut buf.as_mut_slice()?[..host.len()];
        words.copy_from_slice(host);
        // SAFETY: `dst` holds `host.len()` words (the caller's contract); `words` is
        // page-locked and is not written again before `ev`, recorded behind this copy, has
        // completed.
        unsafe { result::memcpy_htod_async(dst, words, stream.cu_stream()) }?;
        ev.record(stream)?;
        Ok(())
    }
}
