//! Linear layers: cuBLAS for steps of many rows, our GEMV kernels (`kernels/gemv.cu`) for steps
//! of at most [`GEMV_MAX_ROWS`] rows, where a layer is one pass over its weights.
//!
//! Invariants:
//! - Both paths give `x · Wᵀ` accumulated in f32 and rounded to the element type once; a bias is added to
//!   the rounded value. Which path runs depends only on the row count and the shapes, so a
//!   decode step and its graph recording take the same path.
//! - Shapes and row capacities are checked before any launch.
//! - The fused forms (q/k/v in one launch, gate/up with silu·mul in one launch) compute what the
//!   separate ops compute; with many rows they are the separate ops.

use super::kernels::{
    gemv_block_rows, gemv_silu_block_rows, GEMV_MAX_ROWS, GEMV_SILU_NORM_MAX_ROWS, GEMV_THREADS,
};
use super::ROW_THREADS;
use super::{as_u32, grid, launch_err, CudaActivations, CudaBackend, CudaError, CudaWeight};
use crate::{Backend, BackendError, Result};

/// Row counts at which the GEMV kernels beat cuBLAS on every layer shape measured (Qwen3-4B and
/// Llama-3-8B on an H100: q/k/v/o, gate/up, down and the head; docs/benchmarks.md).
const GEMV_ALWAYS_ROWS: usize = 2;

// gate/up runs as a GEMV up to GEMV_ALWAYS_ROWS rows; its folded-norm form has instances for
// exactly those row counts (`residual.rs`).
const _: () = assert!(GEMV_SILU_NORM_MAX_ROWS == GEMV_ALWAYS_ROWS);

/// Up to `GEMV_MAX_ROWS` rows the kernels still win on matrices up to this many elements
/// (k/v, o and Qwen3-4B's q: cuBLAS is latency-bound there); on larger ones cuBLAS's tiles do
/// better from 4 rows on.
const GEMV_SMALL_MATRIX: usize = 12 << 20;

/// Which kernel of `gemv.cu` a GEMV launch runs.
pub(super) enum GemvForm<'a> {
    /// `gemv_<M>`: y = x · Wᵀ (+ bias).
    Plain,
    /// `gemv_norm_<M>`: x is the residual stream, normalized with this weight and eps.
    Norm(&'a CudaWeight, f32),
    /// `gemv_res_<M>`: y, the residual stream, gets the product added.
    Residual,
}

/// One matrix of a GEMV launch: weight, optional bias, output, output width.
pub(super) struct Segment {
    w: u64,
    bias: u64,
    y: u64,
    n: u32,
}

impl CudaBackend {
    /// Whether the GEMV kernels can take a step of `rows` rows over `k` inputs.
    pub(super) fn gemv_fits(&self, rows: usize, k: usize) -> bool {
        self.small_gemv && (1..=GEMV_MAX_ROWS).contains(&rows) && k.is_multiple_of(8)
    }

    /// Whether they are the faster path for one `[n, k]` matrix (see the constants).
    pub(super) fn gemv_wins(&self, rows: usize, n: usize, k: usize) -> bool {
        self.gemv_fits(rows, k) && (rows <= GEMV_ALWAYS_ROWS || n * k <= GEMV_SMALL_MATRIX)
    }

    /// Turns the GEMV kernels on or off (tests and benchmarks compare them with cuBLAS).
    pub fn set_small_batch_gemv(&mut self, on: bool) {
        self.small_gemv = on;
    }

    pub(super) fn check_linear(
        &self,
        x: &CudaActivations,
        weight: &CudaWeight,
        bias: Option<&CudaWeight>,
        rows: usize,
        out: &CudaActivations,
    ) -> Result<()> {
        if x.cols != weight.cols || out.cols != weight.rows {
            return Err(BackendError::Shape {
                what: "linear".into(),
                expected: format!(
                    "[{rows}, {}] · [{}, {}]ᵀ",
                    weight.cols, weight.rows, weight.cols
                ),
                got: format!("[{rows}, {}] into [{rows}, {}]", x.cols, out.cols),
            });
        }
        x.check_rows(rows, "linear input")?;
        out.check_rows(rows, "linear output")?;
        if let Some(b) = bias {
            self.check_vector(b, weight.rows, "linear bias")?;
        }
        Ok(())
    }

    pub(super) fn segment(
        &self,
        w: &CudaWeight,
        bias: Option<&CudaWeight>,
        out: &CudaActivations,
    ) -> Result<Segment> {
        Ok(Segment {
            w: self.a(&w.data),
            bias: bias.map_or(0, |b| self.a(&b.data)),
            y: self.a(&out.data),
            n: as_u32(w.rows.max(1), "linear output width")?,
        })
    }

    /// Up to three matrices over the same `x` in one launch, in one of the forms of `gemv.cu`
    /// (which share their parameters).
    pub(super) fn gemv_launch(
        &self,
        x: &CudaActivations,
        rows: usize,
        segs: &[Segment],
        form: GemvForm<'_>,
    ) -> Result<()> {
        let none = Segment {
            w: 0,
            bias: 0,
            y: 0,
            n: 1,
        };
        let seg = |i: usize| segs.get(i).unwrap_or(&none);
        let per_block = gemv_block_rows(rows);
        let blocks = |i: usize| {
            segs.get(i)
                .map_or(0, |s| (s.n as usize).div_ceil(per_block))
        };
        let cfg = grid(blocks(0) + blocks(1) + blocks(2), 1, GEMV_THREADS)?;
        let (xa, k) = (self.a(&x.data), as_u32(x.cols, "linear input width")?);
        let (s0, s1, s2) = (seg(0), seg(1), seg(2));
        // Segments past the last have no blocks; their n only keeps the block split sound.
        let (n1, n2) = (
            if segs.len() > 1 { s1.n } else { 0 },
            if segs.len() > 2 { s2.n } else { 0 },
        );
        let (f, name, (na, eps)) = match form {
            GemvForm::Plain => (&self.k.gemv, "gemv", (0, 0.0)),
            GemvForm::Norm(w, eps) => (&self.k.gemv_norm, "gemv_norm", (self.a(&w.data), eps)),
            GemvForm::Residual => (&self.k.gemv_res, "gemv_res", (0, 0.0)),
        };
        launch!(
            self,
            &f[rows - 1],
            name,
            cfg,
            &xa,
            &k,
            &s0.w,
            &s1.w,
            &s2.w,
            &s0.bias,
            &s1.bias,
            &s2.bias,
            &s0.y,
            &s1.y,
            &s2.y,
            &s0.n,
            &n1,
            &n2,
            &na,
            &eps
        )
    }

    /// gate/up with silu·mul in one launch; with `norm`, `x` is the residual stream and its
    /// RMSNorm is folded in (`gemv_silu_norm_<M>`).
    pub(super) fn gemv_silu_launch(
        &self,
        x: &CudaActivations,
        gate: &CudaWeight,
        up: &CudaWeight,
        rows: usize,
        out: &CudaActivations,
        norm: Option<(&CudaWeight, f32)>,
    ) -> Result<()> {
        self.check_linear(x, gate, None, rows, out)?;
        self.check_linear(x, up, None, rows, out)?;
        let (xa, k) = (self.a(&x.data), as_u32(x.cols, "linear input width")?);
        let (ga, ua, oa) = (self.a(&gate.data), self.a(&up.data), self.a(&out.data));
        let n = as_u32(gate.rows, "MLP width")?;
        let blocks = gate.rows.div_ceil(gemv_silu_block_rows(rows));
        let (f, name, (na, eps)) = match norm {
            None => (&self.k.gemv_silu, "gemv_silu", (0, 0.0)),
            Some((w, eps)) => (
                &self.k.gemv_silu_norm,
                "gemv_silu_norm",
                (self.a(&w.data), eps),
            ),
        };
        launch!(
            self,
            &f[rows - 1],
            name,
            grid(blocks, 1, GEMV_THREADS)?,
            &xa,
            &k,
            &ga,
            &ua,
            &oa,
            &n,
            &na,
            &eps
        )
    }

    pub(super) fn linear_op(
        &self,
        x: &CudaActivations,
        weight: &CudaWeight,
        bias: Option<&CudaWeight>,
        rows: usize,
        out: &mut CudaActivations,
    ) -> Result<()> {
        let _t = self.timer(|| {
            format!(
                "linear {}->{} (≤{} rows)",
                weight.cols,
                weight.rows,
                rows.next_power_of_two()
            )
        });
        self.check_linear(x, weight, bias, rows, out)?;
        if rows == 0 {
            return Ok(());
        }
        if self.gemv_wins(rows, weight.rows, weight.cols) {
            return self.gemv_launch(
                x,
                rows,
                &[self.segment(weight, bias, out)?],
                GemvForm::Plain,
            );
        }
        let (xa, wa, ya) = (self.a(&x.data), self.a(&weight.data), self.a(&out.data));
        // cuBLAS runs in the calling thread's current context, and the engine thread is not
        // the one that created the handle.
        self.ctx.bind_to_thread().map_err(CudaError::from)?;
        self.blas
            .linear(self.dtype, xa, wa, ya, rows, weight.cols, weight.rows)?;
        if let Some(bias) = bias {
            let ba = self.a(&bias.data);
            let cols = as_u32(out.cols, "cols")?;
            launch!(
                self,
                &self.k.add_bias,
                "add_bias",
                grid(rows, 1, ROW_THREADS)?,
                &ya,
                &ba,
                &cols
            )?;
        }
        Ok(())
    }

    pub(super) fn linear_qkv_op(
        &self,
        x: &CudaActivations,
        proj: [(&CudaWeight, Option<&CudaWeight>); 3],
        rows: usize,
        outs: [&mut CudaActivations; 3],
    ) -> Result<()> {
        // One launch for all three wins at every row count that fits: k and v alone are where
        // cuBLAS is slowest.
        if !self.gemv_fits(rows, x.cols) {
            for ((w, b), out) in proj.into_iter().zip(outs) {
                self.linear_op(x, w, b, rows, out)?;
            }
            return Ok(());
        }
        let _t = self.timer(|| format!("linear q/k/v {} (≤{rows} rows)", x.cols));
        let mut segs = Vec::with_capacity(3);
        for ((w, b), out) in proj.into_iter().zip(outs.iter()) {
            self.check_linear(x, w, b, rows, out)?;
            segs.push(self.segment(w, b, out)?);
        }
        self.gemv_launch(x, rows, &segs, GemvForm::Plain)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn gate_up_silu_op(
        &self,
        x: &CudaActivations,
        gate: &CudaWeight,
        up: &CudaWeight,
        rows: usize,
        gate_buf: &mut CudaActivations,
        up_buf: &mut CudaActivations,
        out: &mut CudaActivations,
    ) -> Result<()> {
        if !(self.gemv_fits(rows, x.cols) && rows <= GEMV_ALWAYS_ROWS) {
            self.linear_op(x, gate, None, rows, gate_buf)?;
            self.linear_op(x, up, None, rows, up_buf)?;
            return self.silu_mul(gate_buf, up_buf, rows, out);
        }
        let _t = self.timer(|| {
            format!(
                "linear gate/up + silu {}->{} (≤{rows} rows)",
                x.cols, gate.rows
            )
        });
        self.gemv_silu_launch(x, gate, up, rows, out, None)
    }
}
