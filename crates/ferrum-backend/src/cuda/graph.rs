//! Decode steps captured once per batch-size bucket and replayed as CUDA graphs, and the
//! persistent buffer that carries each step's metadata to the device.
//!
//! Invariants:
//! - A graph bakes in every device address and launch shape it was captured with. The step
//!   metadata therefore always goes to the same buffer (`upload`), which only ever grows; when
//!   it grows, its address changes and every graph is dropped (captured again on next use).
//! - The caller captures a graph only for a step whose shape (token and sequence counts, block
//!   table width, logits rows) is fixed by the key, and uploads each step's metadata before
//!   replaying, outside any capture.
//! - The scratch of split decode attention lives here too, for the same reason: f32 chunk
//!   records and u32 per-(token, head) counts, two buffers that only grow, never while a capture
//!   is open, and growing drops every graph. A capture that needs more than there is fails (the
//!   step then runs op by op) and leaves the sizes it wanted, which the next capture allocates
//!   before it starts. The counts are zero when allocated and every decode launch leaves them
//!   zero, so they never hold anything but counts.
//! - Nothing synchronizes the stream while it is capturing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaGraph, CudaSlice, CudaStream};

use super::tensor::{addr, grow_zeroed, too_small};
use super::CudaError;
use crate::{BackendError, Result};

/// A graph executable, used only under the state's mutex.
struct Graph(CudaGraph);

// SAFETY: a CUDA graph may be used from any thread as long as calls on it are serialized; every
// use goes through `GraphState`'s mutex.
unsafe impl Send for Graph {}

#[derive(Default)]
struct Inner {
    upload: Option<CudaSlice<u32>>,
    /// Page-locked staging of the uploads (so that they are only queued).
    staging: super::host_ring::HostRing,
    graphs: HashMap<usize, Graph>,
    capturing: Option<usize>,
    scratch: Option<CudaSlice<f32>>,
    counts: Option<CudaSlice<u32>>,
    /// Sizes a failed capture wanted: (floats, counts).
    scratch_want: (usize, usize),
    /// Counts uploads: a batch is live only while no later upload replaced its metadata.
    generation: u64,
}

impl Inner {
    /// Grows the scratch to at least `floats` f32 and `counts` u32; drops the graphs when an
    /// address changes.
    fn grow_scratch(
        &mut self,
        stream: &Arc<CudaStream>,
        (floats, counts): (usize, usize),
        card: &str,
    ) -> Result<()> {
        // Each buffer drops the graphs as soon as it moves, so that a failure growing the
        // other leaves no graph with a freed address.
        if grow_zeroed(&mut self.scratch, floats, stream, "attention scratch", card)? {
            self.graphs.clear();
        }
        if grow_zeroed(&mut self.counts, counts, stream, "attention counts", card)? {
            self.graphs.clear();
        }
        Ok(())
    }
}

#[derive(Default)]
pub(super) struct GraphState {
    inner: Mutex<Inner>,
}

impl GraphState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The generation of the metadata in the upload buffer now.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Copies `host` into the persistent upload buffer; returns its device address and the
    /// new generation.
    pub fn upload(&self, stream: &Arc<CudaStream>, host: &[u32]) -> Result<(u64, u64)> {
        let mut g = self.lock();
        if g.capturing.is_some() {
            return Err(BackendError::Device(
                "step metadata uploaded while a graph is being captured".into(),
            ));
        }
        let have = g.upload.as_ref().map_or(0, |b| b.len());
        if have < host.len() {
            let want = host.len().next_power_of_two().max(4096);
            // The old buffer is freed in stream order, after the work that still reads it.
            g.upload = Some(stream.alloc_zeros::<u32>(want).map_err(|e| {
                BackendError::OutOfMemory(format!("step metadata ({want} words): {e}"))
            })?);
            g.graphs.clear();
        }
        let buf = g
            .upload
            .as_mut()
            .ok_or_else(|| BackendError::Device("no upload buffer".into()))?;
        let a = addr(buf, stream);
        // `buf` holds at least `host.len()` words (grown above).
        g.staging
            .upload(stream.context(), stream, host, a)
            .map_err(BackendError::from)?;
        g.generation += 1;
        Ok((a, g.generation))
    }

    /// Device addresses of at least `floats` f32 of attention scratch and of `counts` u32
    /// counts, zero on entry and to be left zero by the work that uses them.
    pub fn scratch(
        &self,
        stream: &Arc<CudaStream>,
        floats: usize,
        counts: usize,
        card: &str,
    ) -> Result<(u64, u64)> {
        let mut g = self.lock();
        if g.capturing.is_some() && (too_small(&g.scratch, floats) || too_small(&g.counts, counts))
        {
            g.scratch_want = (g.scratch_want.0.max(floats), g.scratch_want.1.max(counts));
            return Err(BackendError::Device(format!(
                "attention scratch of {floats} floats and {counts} counts needed while recording a graph"
            )));
        }
        g.grow_scratch(stream, (floats, counts), card)?;
        let at =
            |b: Option<u64>| b.ok_or_else(|| BackendError::Device("no attention scratch".into()));
        Ok((
            at(g.scratch.as_ref().map(|s| addr(s, stream)))?,
            at(g.counts.as_ref().map(|s| addr(s, stream)))?,
        ))
    }

    pub fn is_capturing(&self) -> bool {
        self.lock().capturing.is_some()
    }

    pub fn begin(&self, stream: &Arc<CudaStream>, key: usize, card: &str) -> Result<()> {
        let mut g = self.lock();
        if g.capturing.is_some() {
            return Err(BackendError::Device(
                "a graph capture is already open".into(),
            ));
        }
        let want = g.scratch_want;
        g.grow_scratch(stream, want, card)?;
        stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
            .map_err(CudaError::from)?;
        g.capturing = Some(key);
        Ok(())
    }

    /// Ends the open capture and keeps the graph under its key when `keep`.
    pub fn end(&self, stream: &Arc<CudaStream>, keep: bool) -> Result<()> {
        let mut g = self.lock();
        let key = g
            .capturing
            .take()
            .ok_or_else(|| BackendError::Device("no graph capture is open".into()))?;
        let graph = stream
            .end_capture(CUgraphInstantiate_flags(0))
            .map_err(CudaError::from)?
            .ok_or_else(|| BackendError::Device("graph capture recorded nothing".into()))?;
        if !keep {
            return Ok(());
        }
        graph.upload().map_err(CudaError::from)?;
        g.graphs.insert(key, Graph(graph));
        Ok(())
    }

    /// Replays graph `key`; false when there is none.
    pub fn replay(&self, key: usize) -> Result<bool> {
        let g = self.lock();
        match g.graphs.get(&key) {
            Some(graph) => {
                graph.0.launch().map_err(CudaError::from)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
