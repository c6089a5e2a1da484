//! RMSNorm launches (`kernels/norm.cu`): the model's norms, the fused residual add + norm
//! between layers, and Qwen3's per-head q/k norm. Shapes and row capacities are checked
//! before any launch.

use super::{as_u32, grid, launch_err, CudaActivations, CudaBackend, CudaWeight, ROW_THREADS};
use crate::{BackendError, Result};

impl CudaBackend {
    pub(super) fn rms_norm_op(
        &self,
        x: &CudaActivations,
        weight: &CudaWeight,
        eps: f32,
        rows: usize,
        out: &mut CudaActivations,
    ) -> Result<()> {
        let _t = self.timer(|| "rms_norm".into());
        self.check_vector(weight, x.cols, "rms_norm weight")?;
        x.check_rows(rows, "rms_norm input")?;
        out.check_rows(rows, "rms_norm output")?;
        if rows == 0 {
            return Ok(());
        }
        let (o, i, w) = (self.a(&out.data), self.a(&x.data), self.a(&weight.data));
        let cols = as_u32(x.cols, "cols")?;
        launch!(
            self,
            &self.k.rms_norm,
            "rms_norm",
            grid(rows, 1, ROW_THREADS)?,
            &o,
            &i,
            &w,
            &cols,
            &eps
        )
    }

    pub(super) fn add_rms_norm_op(
        &self,
        residual: &mut CudaActivations,
        x: &CudaActivations,
        weight: &CudaWeight,
        eps: f32,
        rows: usize,
        out: &mut CudaActivations,
    ) -> Result<()> {
        let _t = self.timer(|| "add_rms_norm".into());
        self.check_vector(weight, x.cols, "add_rms_norm weight")?;
        residual.check_rows(rows, "residual")?;
        x.check_rows(rows, "add_rms_norm input")?;
        out.check_rows(rows, "add_rms_norm output")?;
        if rows == 0 {
            return Ok(());
        }
        let (o, r, i, w) = (
            self.a(&out.data),
            self.a(&residual.data),
            self.a(&x.data),
            self.a(&weight.data),
        );
        let cols = as_u32(x.cols, "cols")?;
        launch!(
            self,
            &self.k.add_rms_norm,
            "add_rms_norm",
            grid(rows, 1, ROW_THREADS)?,
            &o,
            &r,
            &i,
            &w,
            &cols,
            &eps
        )
    }

    pub(super) fn head_rms_norm_op(
        &self,
        x: &mut CudaActivations,
        weight: &CudaWeight,
        eps: f32,
        head_dim: usize,
        rows: usize,
    ) -> Result<()> {
        let _t = self.timer(|| "head_rms_norm".into());
        self.check_vector(weight, head_dim, "head_rms_norm weight")?;
        x.check_rows(rows, "head_rms_norm")?;
        if head_dim == 0 || !x.cols.is_multiple_of(head_dim) {
            return Err(BackendError::Shape {
                what: "head_rms_norm".into(),
                expected: format!("head_dim dividing {}", x.cols),
                got: head_dim.to_string(),
            });
        }
        if rows == 0 {
            return Ok(());
        }
        let heads = rows * x.cols / head_dim;
        let (p, w) = (self.a(&x.data), self.a(&weight.data));
        let (h, d) = (as_u32(heads, "heads")?, as_u32(head_dim, "head_dim")?);
        // 4 warps per block, one head per warp.
        let cfg = grid(heads.div_ceil(4), 1, 128)?;
        launch!(
            self,
            &self.k.head_rms_norm,
            "head_rms_norm",
            cfg,
            &p,
            &w,
            &h,
            &d,
            &eps
        )
    }
}
