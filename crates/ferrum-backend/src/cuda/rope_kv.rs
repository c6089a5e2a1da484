//! Rotary, the KV-cache write, and both in one launch with Qwen3's per-head q/k norm
//! (`qk_rope_kv_<D>` in `kernels/rope.cu`): as separate ops they are four launches per layer
//! of a decode step whose time is mostly their latency.
//!
//! Invariants:
//! - Same results as `head_rms_norm`, `rotary` and `write_kv` in that order (same roundings,
//!   same summation order of the norm); `k` is left as it came (the cache has the keys).
//! - Taken for rotate-half rotary over the whole head and head sizes with a kernel; anything
//!   else runs the separate ops. The choice depends only on the model, so a decode step and its
//!   graph recording take the same path.
//! - Every metadata bound the separate ops check is checked here before the launch.

use super::tensor::addr;
use super::{
    as_u32, grid, launch_err, CudaActivations, CudaBackend, CudaBatch, CudaError, CudaKvCache,
    CudaRope, CudaWeight,
};
use crate::{Backend, BackendError, Result};

impl CudaBackend {
    /// Refuses positions past the rotary table before a kernel indexes it.
    fn check_positions(&self, rope: &CudaRope, batch: &CudaBatch) -> Result<()> {
        match batch.max_position {
            Some(p) if p as usize >= rope.max_positions => Err(BackendError::Batch(format!(
                "position {p} beyond the rotary table of {}",
                rope.max_positions
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses slots past the KV cache before a kernel writes there.
    fn check_slots(&self, cache: &CudaKvCache, batch: &CudaBatch) -> Result<()> {
        match batch.max_slot {
            Some(s) if s as usize >= cache.num_slots() => Err(BackendError::Batch(format!(
                "slot {s} beyond the KV cache of {} slots",
                cache.num_slots()
            ))),
            _ => Ok(()),
        }
    }

    pub(super) fn rotary_op(
        &self,
        rope: &CudaRope,
        batch: &CudaBatch,
        q: &mut CudaActivations,
        k: &mut CudaActivations,
        head_dim: usize,
    ) -> Result<()> {
        let _t = self.timer(|| "rotary".into());
        self.live(batch)?;
        let n = batch.num_tokens;
        q.check_rows(n, "rotary q")?;
        k.check_rows(n, "rotary k")?;
        if head_dim == 0
            || !q.cols.is_multiple_of(head_dim)
            || !k.cols.is_multiple_of(head_dim)
            || 2 * rope.half > head_dim
        {
            return Err(BackendError::Shape {
                what: "rotary".into(),
                expected: format!("head_dim ≥ {} dividing q and k widths", 2 * rope.half),
                got: format!("head_dim {head_dim}, widths {} and {}", q.cols, k.cols),
            });
        }
        self.check_positions(rope, batch)?;
        if n == 0 || rope.half == 0 {
            return Ok(());
        }
        let (qa, ka) = (self.a(&q.data), self.a(&k.data));
        let (ca, sa) = (addr(&rope.cos, &self.stream), addr(&rope.sin, &self.stream));
        let pos = batch.at(batch.off.positions, &self.stream);
        let qh = as_u32(q.cols / head_dim, "q heads")?;
        let kh = as_u32(k.cols / head_dim, "k heads")?;
        let hd = as_u32(head_dim, "head_dim")?;
        let half = as_u32(rope.half, "rotary half")?;
        let il = u32::from(rope.interleaved);
        let pairs = (q.cols / head_dim + k.cols / head_dim) * rope.half;
        launch!(
            self,
            &self.k.rotary,
            "rotary",
            grid(n, pairs.div_ceil(128), 128)?,
            &qa,
            &ka,
            &ca,
            &sa,
            &pos,
            &qh,
            &kh,
            &hd,
            &half,
            &il
        )
    }

    pub(super) fn write_kv_op(
        &self,
        cache: &mut CudaKvCache,
        layer: usize,
        batch: &CudaBatch,
        k: &CudaActivations,
        v: &CudaActivations,
    ) -> Result<()> {
        let _t = self.timer(|| "write_kv".into());
        self.live(batch)?;
        let n = batch.num_tokens;
        let width = cache.width();
        if k.cols != width || v.cols != width {
            return Err(BackendError::Shape {
                what: "write_kv".into(),
                expected: format!("{width} values per token"),
                got: format!("{} and {}", k.cols, v.cols),
            });
        }
        k.check_rows(n, "k")?;
        v.check_rows(n, "v")?;
        self.check_slots(cache, batch)?;
        if n == 0 {
            return Ok(());
        }
        let (kc, vc) = cache.layer_addrs(layer, &self.stream)?;
        let (ka, va) = (self.a(&k.data), self.a(&v.data));
        let slots = batch.at(batch.off.slot_mapping, &self.stream);
        let w = as_u32(width, "width")?;
        launch!(
            self,
            &self.k.write_kv,
            "write_kv",
            grid(n, width.div_ceil(128), 128)?,
            &kc,
            &vc,
            &ka,
            &va,
            &slots,
            &w
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn qk_rope_write_kv_op(
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
        let fused = self
            .k
            .qk_rope_kv
            .iter()
            .find(|(d, _)| *d == head_dim)
            .map(|(_, f)| f)
            .filter(|_| !rope.interleaved && 2 * rope.half == head_dim);
        let Some(f) = fused else {
            if let Some((qn, kn, eps)) = qk_norm {
                self.head_rms_norm(q, qn, eps, head_dim, rows)?;
                self.head_rms_norm(k, kn, eps, head_dim, rows)?;
            }
            self.rotary(rope, batch, q, k, head_dim)?;
            return self.write_kv(cache, layer, batch, k, v);
        };
        let _t = self.timer(|| "q/k norm + rotary + write_kv".into());
        self.live(batch)?;
        let n = batch.num_tokens;
        let width = cache.width();
        if rows != n
            || !q.cols.is_multiple_of(head_dim)
            || k.cols != width
            || v.cols != width
            || !width.is_multiple_of(head_dim)
        {
            return Err(BackendError::Shape {
                what: "q/k norm + rotary + write_kv".into(),
                expected: format!(
                    "{n} rows, q a multiple of head_dim {head_dim}, k and v {width} wide"
                ),
                got: format!("{rows} rows, widths {}, {} and {}", q.cols, k.cols, v.cols),
            });
        }
        q.check_rows(n, "q")?;
        k.check_rows(n, "k")?;
        v.check_rows(n, "v")?;
        if let Some((qn, kn, _)) = qk_norm {
            self.check_vector(qn, head_dim, "q norm weight")?;
            self.check_vector(kn, head_dim, "k norm weight")?;
        }
        self.check_positions(rope, batch)?;
        self.check_slots(cache, batch)?;
        if n == 0 {
            return Ok(());
        }
        let (kc, vc) = cache.layer_addrs(layer, &self.stream)?;
        let (qa, ka, va) = (self.a(&q.data), self.a(&k.data), self.a(&v.data));
        let (ca, sa) = (addr(&rope.cos, &self.stream), addr(&rope.sin, &self.stream));
        let pos = batch.at(batch.off.positions, &self.stream);
        let slots = batch.at(batch.off.slot_mapping, &self.stream);
        let (nq, nkv) = (q.cols / head_dim, width / head_dim);
        let (qna, kna, eps) = qk_norm.map_or((0, 0, 0.0f32), |(qn, kn, eps)| {
            (self.a(&qn.data), self.a(&kn.data), eps)
        });
        let (nq32, nkv32) = (as_u32(nq, "q heads")?, as_u32(nkv, "kv heads")?);
        launch!(
            self,
            f,
            "qk_rope_kv",
            grid(n, (nq + nkv).div_ceil(4), 128)?,
            &qa,
            &ka,
            &va,
            &kc,
            &vc,
            &qna,
            &kna,
            &ca,
            &sa,
            &pos,
            &slots,
            &nq32,
            &nkv32,
            &eps
        )
    }

    /// Layer `layer`'s keys and values, every slot, as f32 (tests compare cache contents).
    pub fn kv_cache_to_host(
        &self,
        cache: &CudaKvCache,
        layer: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        cache.layer_addrs(layer, &self.stream)?;
        let w = self.dtype.words();
        let slab = cache.slab() * w;
        let at = 2 * layer * slab;
        let read = |from: usize| -> Result<Vec<f32>> {
            let bits = self
                .stream
                .clone_dtoh(&cache.data.slice(from..from + slab))
                .map_err(CudaError::from)?;
            let mut out = vec![0.0f32; slab / w];
            self.dtype.words_to_f32(&bits, &mut out);
            Ok(out)
        };
        Ok((read(at)?, read(at + slab)?))
    }
}
