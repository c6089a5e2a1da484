//! Sampling on the device (`kernels/sampling.cu`): the logits stay on the GPU and one token id
//! per row comes back.
//!
//! Invariants: parameters and adjustments travel in one `u32` upload per step, checked on the
//! host first (rows within the logits buffer, one entry per (row, token), tokens within the
//! vocabulary); a row marked [`RowSampling::Host`] is left untouched by the sampling kernel.

use cudarc::driver::{LaunchConfig, PushKernelArg};

use super::{as_u32, launch_err, CudaActivations, CudaBackend, CudaError};
use crate::{BackendError, LogitAdjust, Result, RowSampling};

/// u32 words per row (see the kernel's header).
const PARAM_WORDS: usize = 6;
/// u32 words per adjustment.
const ADJUST_WORDS: usize = 5;
const SAMPLE_THREADS: u32 = 1024;

fn row_words(r: &RowSampling) -> [u32; PARAM_WORDS] {
    match *r {
        RowSampling::Host => [0; PARAM_WORDS],
        RowSampling::Greedy => [1, 0, 0, 0, 0, 0],
        RowSampling::Random {
            temperature,
            top_k,
            top_p,
            min_p,
            uniform,
        } => [
            2,
            temperature.to_bits(),
            top_k,
            top_p.to_bits(),
            min_p.to_bits(),
            uniform.to_bits(),
        ],
    }
}

pub(super) fn sample(
    be: &CudaBackend,
    logits: &mut CudaActivations,
    rows: &[RowSampling],
    adjust: &[LogitAdjust],
) -> Result<Vec<u32>> {
    let n = rows.len();
    logits.check_rows(n, "sample")?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let vocab = logits.cols;
    let mut host = Vec::with_capacity(n * PARAM_WORDS + adjust.len() * ADJUST_WORDS);
    for r in rows {
        host.extend_from_slice(&row_words(r));
    }
    for a in adjust {
        if a.row as usize >= n || a.token as usize >= vocab {
            return Err(BackendError::Batch(format!(
                "logit adjustment for row {} token {} outside {n} rows × {vocab} tokens",
                a.row, a.token
            )));
        }
        host.extend_from_slice(&[
            a.row,
            a.token,
            a.pre_add.to_bits(),
            a.rep.to_bits(),
            a.post_add.to_bits(),
        ]);
    }
    let buf = be.stream.clone_htod(&host).map_err(CudaError::from)?;
    let out = be.stream.alloc_zeros::<u32>(n).map_err(CudaError::from)?;
    let base = super::addr(&buf, &be.stream);
    let la = be.a(&logits.data);
    let v = as_u32(vocab, "vocab")?;
    if !adjust.is_empty() {
        let ops = base + (4 * n * PARAM_WORDS) as u64;
        let count = as_u32(adjust.len(), "logit adjustments")?;
        let cfg = super::grid(adjust.len().div_ceil(256), 1, 256)?;
        let mut b = be.stream.launch_builder(&be.k.apply_logit_adjust);
        b.arg(&la).arg(&ops).arg(&count).arg(&v);
        // SAFETY: `ops` holds `count` entries of ADJUST_WORDS words whose rows and tokens were
        // checked against the logits buffer above.
        unsafe { b.launch(cfg) }.map_err(|e| launch_err("apply_logit_adjust", e))?;
    }
    let oa = super::addr(&out, &be.stream);
    let cfg = LaunchConfig {
        grid_dim: (as_u32(n, "rows")?, 1, 1),
        block_dim: (SAMPLE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = be.stream.launch_builder(&be.k.sample_rows);
    b.arg(&la).arg(&base).arg(&v).arg(&oa);
    // SAFETY: `base` holds n rows of PARAM_WORDS words, the logits buffer at least n rows of
    // `vocab` values and `out` n words.
    unsafe { b.launch(cfg) }.map_err(|e| launch_err("sample_rows", e))?;
    let tokens = be.stream.clone_dtoh(&out).map_err(CudaError::from)?;
    Ok(tokens)
}
