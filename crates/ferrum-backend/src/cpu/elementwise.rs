//! Embedding gather and the SwiGLU activation.

use super::pool::{par_chunks_mut, Parallel};
use super::CpuWeight;
use crate::{BackendError, Result};

pub fn embedding(
    par: &dyn Parallel,
    table: &CpuWeight,
    ids: &[u32],
    cols: usize,
    out: &mut [f32],
) -> Result<()> {
    if table.cols() != cols {
        return Err(BackendError::Shape {
            what: "embedding".into(),
            expected: format!("{cols} columns"),
            got: format!("{}", table.cols()),
        });
    }
    let vocab = table.rows();
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(BackendError::Batch(format!(
            "token id {bad} outside the vocabulary of {vocab}"
        )));
    }
    match table {
        CpuWeight::Dense { data, .. } => {
            for (o, &id) in out.chunks_mut(cols).zip(ids) {
                let r = id as usize;
                o.copy_from_slice(&data[r * cols..(r + 1) * cols]);
            }
            Ok(())
        }
        CpuWeight::Quantized(m) => {
            // Ids were checked above and every row is `cols` long, so decoding cannot fail;
            // keep the first error anyway rather than dropping it.
            let err = std::sync::Mutex::new(None);
            par_chunks_mut(par, out, cols, |i, o| {
                if let Err(e) = m.dequantize_row(ids[i] as usize, o) {
                    if let Ok(mut slot) = err.lock() {
                        slot.get_or_insert(e);
                    }
                }
            });
            match err.into_inner() {
                Ok(Some(e)) => Err(e),
                _ => Ok(()),
            }
        }
    }
}

pub fn silu_mul(par: &dyn Parallel, gate: &[f32], up: &[f32], out: &mut [f32]) {
    const CHUNK: usize = 8192;
    par_chunks_mut(par, out, CHUNK, |i, o| {
        super::expf::silu_mul_slice(&gate[i * CHUNK..], &up[i * CHUNK..], o);
    });
}
