//! Embedding gather and the SwiGLU activation.

use rayon::prelude::*;

use super::CpuWeight;
use crate::{BackendError, Result};

pub fn embedding(table: &CpuWeight, ids: &[u32], cols: usize, out: &mut [f32]) -> Result<()> {
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
        CpuWeight::Quantized(m) => out
            .par_chunks_mut(cols)
            .zip(ids.par_iter())
            .try_for_each(|(o, &id)| m.dequantize_row(id as usize, o)),
    }
}

#[inline]
fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

pub fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    const CHUNK: usize = 4096;
    out.par_chunks_mut(CHUNK)
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .for_each(|(o, (g, u))| {
            for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                *o = silu(g) * u;
            }
        });
}
