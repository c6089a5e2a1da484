//! `out = x · Wᵀ` for block-quantized `W`: the entry point the CPU backend's `linear` calls.
//!
//! Invariants:
//! - Sizes are validated before any work; a mismatch is a typed error, never a panic.
//! - Each activation row is quantized once per call, into a thread-local buffer that keeps its
//!   allocation across calls (a fresh one only when the calling thread is already inside a
//!   matmul, e.g. nested in a rayon task).
//! - Work is split over output features only (GGUF rows, or interleaved groups of 16), so
//!   every task writes disjoint columns of `out`, in chunks sized so that a chunk of weight
//!   rows stays in cache while every tile of up to [`MAX_TILE`] activation rows passes over
//!   it: each weight block fetched from memory serves all activation rows, which is what makes
//!   prefill compute-bound rather than memory-bound.
//! - The result for a given (weight row, activation row) pair does not depend on the batch it
//!   was computed in: batched == single, bit for bit.

use std::cell::RefCell;

use ferrum_types::DType;
use rayon::prelude::*;

use super::activation::{ActBuffer, ActRow};
use super::kernels::{self, GroupFn, TileFn, MAX_TILE};
use super::packed::{group_block_bytes, Layout, PreparedMatrix, GROUP};
use crate::{BackendError, Result};

/// A borrowed `[rows, cols]` matrix of GGUF blocks, each row `cols / block_size` whole blocks.
#[derive(Debug, Clone, Copy)]
pub struct QuantMatrix<'a> {
    pub dtype: DType,
    /// Output features.
    pub rows: usize,
    /// Input features (a multiple of the block size).
    pub cols: usize,
    pub data: &'a [u8],
}

impl QuantMatrix<'_> {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> Result<usize> {
        Ok(self.dtype.size_in_bytes(self.cols)?)
    }

    /// Checks that `data` holds exactly `rows` rows of `cols` elements.
    pub fn validate(&self) -> Result<()> {
        let row_bytes = self.row_bytes()?;
        let expected = row_bytes.checked_mul(self.rows);
        if expected != Some(self.data.len()) {
            return Err(BackendError::Shape {
                what: format!("{} matrix {}×{}", self.dtype, self.rows, self.cols),
                expected: format!("{row_bytes} bytes per row × {} rows", self.rows),
                got: format!("{} bytes", self.data.len()),
            });
        }
        Ok(())
    }
}

thread_local! {
    static SCRATCH: RefCell<ActBuffer> = RefCell::new(ActBuffer::default());
}

/// `out[r·rows + o] = Σ_i x[r·cols + i] · W[o, i]` for `r < n_rows_x`, `o < w.rows`.
///
/// `x` is `[n_rows_x, cols]` and `out` is `[n_rows_x, rows]`, both row-major and exactly that
/// long. Activations are quantized to 8 bits first (Q8_0, Q8_1 or Q8_K, as llama.cpp does), so
/// results match llama.cpp's to rounding rather than an f32 reference. Runs on rayon's current
/// pool. [`quant_matmul_prepared`] is faster for Q4_1 and Q8_0 weights.
pub fn quant_matmul(
    x: &[f32],
    n_rows_x: usize,
    w: &QuantMatrix<'_>,
    out: &mut [f32],
) -> Result<()> {
    w.validate()?;
    let kernel = kernels::best()
        .get(w.dtype)
        .ok_or_else(|| unsupported(w.dtype))?;
    check_operands(x, n_rows_x, w.dtype, w.rows, w.cols, out)?;
    with_activations(w.dtype, x, n_rows_x, w.cols, |acts| {
        // SAFETY: `kernel` comes from `kernels::best()` (features detected) for `w.dtype`, `w`
        // was validated, `acts` holds `n_rows_x` rows of `cols` in the matching format, and
        // `out` was checked to be `n_rows_x × rows`.
        unsafe { multiply_rows(kernel, w, acts, out) }
    })
}

/// As [`quant_matmul`], for a matrix laid out once by [`PreparedMatrix::new`].
pub fn quant_matmul_prepared(
    x: &[f32],
    n_rows_x: usize,
    w: &PreparedMatrix,
    out: &mut [f32],
) -> Result<()> {
    let (dtype, rows, cols) = (w.dtype(), w.rows(), w.cols());
    let data = match w.layout() {
        Layout::Rows(data) => {
            let m = QuantMatrix {
                dtype,
                rows,
                cols,
                data,
            };
            return quant_matmul(x, n_rows_x, &m, out);
        }
        Layout::Interleaved(data) => data,
    };
    let kernel = kernels::best()
        .get_packed(dtype)
        .ok_or_else(|| unsupported(dtype))?;
    check_operands(x, n_rows_x, dtype, rows, cols, out)?;
    with_activations(dtype, x, n_rows_x, cols, |acts| {
        // SAFETY: as in `quant_matmul`; `data` was laid out by `PreparedMatrix::new` for
        // `dtype`, `rows` and `cols`.
        unsafe { multiply_groups(kernel, w, data, acts, out) }
    })
}

fn unsupported(dtype: DType) -> BackendError {
    BackendError::UnsupportedDType {
        op: "quant_matmul",
        dtype,
    }
}

fn check_operands(
    x: &[f32],
    n: usize,
    dtype: DType,
    rows: usize,
    cols: usize,
    out: &[f32],
) -> Result<()> {
    if kernels::act_format(dtype).is_none() {
        return Err(unsupported(dtype));
    }
    if n.checked_mul(cols) != Some(x.len()) || n.checked_mul(rows) != Some(out.len()) {
        return Err(BackendError::Shape {
            what: "quant_matmul operands".into(),
            expected: format!("x {n}×{cols}, out {n}×{rows}"),
            got: format!("x {} values, out {} values", x.len(), out.len()),
        });
    }
    Ok(())
}

/// Quantizes `x` into this thread's reusable buffer (or a fresh one when that is in use by an
/// enclosing call) and runs `f` on it. Nothing to do for an empty product.
fn with_activations(
    dtype: DType,
    x: &[f32],
    n: usize,
    cols: usize,
    f: impl FnOnce(&ActBuffer),
) -> Result<()> {
    let format = kernels::act_format(dtype).ok_or_else(|| unsupported(dtype))?;
    if n == 0 || x.is_empty() {
        return Ok(());
    }
    let run = |acts: &mut ActBuffer| {
        acts.quantize(format, x, n, cols);
        f(acts);
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut acts) => run(&mut acts),
        Err(_) => run(&mut ActBuffer::default()),
    });
    Ok(())
}

/// `*mut f32` that tasks share; each writes only its own columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint elements (distinct output features), see `multiply`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// A method (not field access) so closures capture the whole `Send` wrapper.
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// Below this many weight bytes per task a rayon fork costs more than it saves.
const MIN_TASK_BYTES: usize = 32 * 1024;
/// Weight bytes per chunk when several activation tiles reuse it (stays in L2).
const PREFILL_CHUNK_BYTES: usize = 96 * 1024;

/// Output features per task.
fn chunk_rows(rows: usize, row_bytes: usize, n_rows_x: usize, threads: usize) -> usize {
    let min_rows = MIN_TASK_BYTES.div_ceil(row_bytes).max(1);
    // A few tasks per thread balance uneven progress; more only add scheduling cost.
    let balanced = rows.div_ceil(threads * 4).max(min_rows);
    if n_rows_x > MAX_TILE {
        balanced.min(PREFILL_CHUNK_BYTES.div_ceil(row_bytes).max(1))
    } else {
        balanced
    }
}

/// # Safety
/// See [`TileFn`]: `kernel` must match `w.dtype` and `acts`' format, and run on this CPU;
/// `w` is validated and `out.len() == acts.rows() * w.rows`.
unsafe fn multiply_rows(kernel: TileFn, w: &QuantMatrix<'_>, acts: &ActBuffer, out: &mut [f32]) {
    let row_bytes = w.data.len() / w.rows;
    let nb = w.cols / w.dtype.block_size();
    let n = acts.rows();
    let threads = rayon::current_num_threads().max(1);
    let chunk = chunk_rows(w.rows, row_bytes, n, threads);
    let dst = OutPtr(out.as_mut_ptr());
    let task = |c: usize| {
        let (o0, o1) = (c * chunk, ((c + 1) * chunk).min(w.rows));
        let mut tile_out = [0.0f32; MAX_TILE];
        for r0 in (0..n).step_by(MAX_TILE) {
            let nx = MAX_TILE.min(n - r0);
            let xs: [ActRow<'_>; MAX_TILE] = std::array::from_fn(|j| acts.row(r0 + j.min(nx - 1)));
            for o in o0..o1 {
                let wrow = &w.data[o * row_bytes..(o + 1) * row_bytes];
                kernel(wrow, nb, &xs[..nx], &mut tile_out[..nx]);
                for (j, &v) in tile_out[..nx].iter().enumerate() {
                    // SAFETY: (r0 + j) < n and o < rows, so the index is inside `out`; only
                    // the task owning columns o0..o1 writes column o.
                    *dst.at((r0 + j) * w.rows + o) = v;
                }
            }
        }
    };
    let chunks = w.rows.div_ceil(chunk);
    if chunks == 1 {
        task(0);
    } else {
        (0..chunks).into_par_iter().for_each(task);
    }
}

/// # Safety
/// As [`multiply_rows`], for interleaved `data` of `w` and a [`GroupFn`] of its type.
unsafe fn multiply_groups(
    kernel: GroupFn,
    w: &PreparedMatrix,
    data: &[u8],
    acts: &ActBuffer,
    out: &mut [f32],
) {
    let (rows, nb, n) = (w.rows(), w.blocks(), acts.rows());
    let group_bytes = nb * group_block_bytes(w.dtype()).unwrap_or(0);
    let groups = rows.div_ceil(GROUP);
    let threads = rayon::current_num_threads().max(1);
    let chunk = chunk_rows(groups, group_bytes, n, threads);
    let dst = OutPtr(out.as_mut_ptr());
    let task = |c: usize| {
        let mut tile_out = [[0.0f32; GROUP]; MAX_TILE];
        for g in c * chunk..((c + 1) * chunk).min(groups) {
            let gdata = &data[g * group_bytes..(g + 1) * group_bytes];
            let valid = GROUP.min(rows - g * GROUP);
            for r0 in (0..n).step_by(MAX_TILE) {
                let nx = MAX_TILE.min(n - r0);
                let xs: [ActRow<'_>; MAX_TILE] =
                    std::array::from_fn(|j| acts.row(r0 + j.min(nx - 1)));
                kernel(gdata, nb, &xs[..nx], &mut tile_out[..nx]);
                for (j, t) in tile_out[..nx].iter().enumerate() {
                    // SAFETY: row r0 + j < n, columns g·16 .. g·16 + valid ≤ rows: inside
                    // `out`; only this task writes the columns of group g.
                    let at = dst.at((r0 + j) * rows + g * GROUP);
                    std::ptr::copy_nonoverlapping(t.as_ptr(), at, valid);
                }
            }
        }
    };
    let chunks = groups.div_ceil(chunk);
    if chunks == 1 {
        task(0);
    } else {
        (0..chunks).into_par_iter().for_each(task);
    }
}
