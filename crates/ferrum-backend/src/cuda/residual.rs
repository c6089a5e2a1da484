//! The residual stream between layers at GEMV row counts: the o and down projections add into
//! it in their own launch (`gemv_res_<M>`), and the next RMSNorm is folded into the projections
//! that read it (`gemv_norm_<M>` for q/k/v, `gemv_silu_norm_<M>` for gate/up), so a decode
//! layer runs no norm launch at all (see `kernels/gemv.cu`).
//!
//! Invariants:
//! - A projection adds into the stream only when it runs as a GEMV; otherwise it leaves its
//!   product in `delta` and returns false, and the next norm adds it (the trait's contract).
//! - A norm is folded only when no delta is pending and the consuming projection runs as a GEMV;
//!   every other case is the separate norm followed by the projection.
//! - `FERRUM_CUDA_FUSED_NORM=0` (or [`CudaBackend::set_fused_norm`]) runs the separate ops at
//!   every row count, to compare.

use super::kernels::GEMV_SILU_NORM_MAX_ROWS;
use super::linear::GemvForm;
use super::{CudaActivations, CudaBackend, CudaWeight};
use crate::{Backend, BackendError, Result};

impl CudaBackend {
    /// Turns the fused residual add and folded norms on or off (tests compare the two).
    pub fn set_fused_norm(&mut self, on: bool) {
        self.fused_norm = on;
    }

    pub(super) fn linear_residual_op(
        &self,
        x: &CudaActivations,
        weight: &CudaWeight,
        rows: usize,
        delta: &mut CudaActivations,
        residual: &mut CudaActivations,
    ) -> Result<bool> {
        if !(self.fused_norm && self.gemv_wins(rows, weight.rows, weight.cols)) {
            self.linear_op(x, weight, None, rows, delta)?;
            return Ok(false);
        }
        let _t = self.timer(|| {
            format!(
                "linear + residual {}->{} (≤{rows} rows)",
                weight.cols, weight.rows
            )
        });
        self.check_linear(x, weight, None, rows, residual)?;
        let seg = self.segment(weight, None, residual)?;
        self.gemv_launch(x, rows, &[seg], GemvForm::Residual)?;
        Ok(true)
    }

    /// Checks the norm weight against the stream's width and the row count against `normed`
    /// (which the folded form leaves untouched, but the separate form would write).
    fn check_folded_norm(
        &self,
        residual: &CudaActivations,
        norm: &CudaWeight,
        rows: usize,
        normed: &CudaActivations,
    ) -> Result<()> {
        self.check_vector(norm, residual.cols, "folded rms_norm weight")?;
        residual.check_rows(rows, "residual")?;
        if normed.cols != residual.cols {
            return Err(BackendError::Shape {
                what: "folded rms_norm".into(),
                expected: format!("normed width {}", residual.cols),
                got: normed.cols.to_string(),
            });
        }
        normed.check_rows(rows, "normed")
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn norm_linear_qkv_op(
        &self,
        residual: &mut CudaActivations,
        delta: Option<&CudaActivations>,
        (norm, eps): (&CudaWeight, f32),
        proj: [(&CudaWeight, Option<&CudaWeight>); 3],
        rows: usize,
        normed: &mut CudaActivations,
        outs: [&mut CudaActivations; 3],
    ) -> Result<()> {
        if delta.is_some() || !self.fused_norm || !self.gemv_fits(rows, residual.cols) {
            let [q, k, v] = outs;
            return Backend::residual_norm(self, residual, delta, norm, eps, rows, normed)
                .and_then(|()| self.linear_qkv_op(normed, proj, rows, [q, k, v]));
        }
        let _t = self.timer(|| format!("rms_norm + linear q/k/v {} (≤{rows} rows)", residual.cols));
        self.check_folded_norm(residual, norm, rows, normed)?;
        let mut segs = Vec::with_capacity(3);
        for ((w, b), out) in proj.into_iter().zip(outs.iter()) {
            self.check_linear(residual, w, b, rows, out)?;
            segs.push(self.segment(w, b, out)?);
        }
        self.gemv_launch(residual, rows, &segs, GemvForm::Norm(norm, eps))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn norm_gate_up_silu_op(
        &self,
        residual: &mut CudaActivations,
        delta: Option<&CudaActivations>,
        (norm, eps): (&CudaWeight, f32),
        gate: &CudaWeight,
        up: &CudaWeight,
        rows: usize,
        normed: &mut CudaActivations,
        bufs: [&mut CudaActivations; 3],
    ) -> Result<()> {
        let [gate_buf, up_buf, out] = bufs;
        if delta.is_some()
            || !self.fused_norm
            || !self.gemv_fits(rows, residual.cols)
            || rows > GEMV_SILU_NORM_MAX_ROWS
        {
            Backend::residual_norm(self, residual, delta, norm, eps, rows, normed)?;
            return self.gate_up_silu_op(normed, gate, up, rows, gate_buf, up_buf, out);
        }
        let _t = self.timer(|| {
            format!(
                "rms_norm + linear gate/up + silu {}->{} (≤{rows} rows)",
                residual.cols, gate.rows
            )
        });
        self.check_folded_norm(residual, norm, rows, normed)?;
        self.gemv_silu_launch(residual, gate, up, rows, out, Some((norm, eps)))
    }
}
