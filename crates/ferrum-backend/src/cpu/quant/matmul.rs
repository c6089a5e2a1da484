//! `out = x · Wᵀ` for block-quantized `W`: the entry point the CPU backend's `linear` calls.
//!
//! Invariants:
//! - Sizes are validated before any work; a mismatch is a typed error, never a panic.
//! - Each activation row is quantized once per call, into a thread-local buffer that keeps its
//!   allocation across calls (a fresh one only when the calling thread is already inside a
//!   matmul, e.g. nested in a rayon task), or once per input matrix when the caller keeps a
//!   [`QuantizedActs`] with it (the backend does: q/k/v and gate/up share their input).
//! - Work is split over output features (GGUF rows, or interleaved groups of 16) in chunks
//!   small enough to stay in L2, and, for long inputs, over blocks of activation rows; every
//!   task writes its own (rows × features) part of `out`. Inside a task each weight group is
//!   loaded once and multiplied against all the task's activation rows while it sits in L1,
//!   so a batch of decode rows costs about one pass over the weights, not one per row.
//! - The result for a given (weight row, activation row) pair does not depend on the batch it
//!   was computed in, nor on the split: batched == single, bit for bit (kernels do the same
//!   arithmetic for a row whatever tile it is in).

use std::cell::RefCell;
use std::mem::MaybeUninit;

use ferrum_types::DType;

use super::activation::{ActBuffer, ActFormat, ActRow};
use super::kernels::{self, GroupFn, TileFn, MAX_TILE};
use super::packed::{group_block_bytes, Layout, PreparedMatrix, GROUP};
use crate::cpu::pool::{Parallel, Rayon, SendPtr};
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
/// pool. [`quant_matmul_prepared`] is faster for Q4_0, Q4_1 and Q8_0 weights.
pub fn quant_matmul(
    x: &[f32],
    n_rows_x: usize,
    w: &QuantMatrix<'_>,
    out: &mut [f32],
) -> Result<()> {
    quant_matmul_on(&Rayon, x, n_rows_x, w, out, None)
}

/// As [`quant_matmul`], for a matrix laid out once by [`PreparedMatrix::new`].
pub fn quant_matmul_prepared(
    x: &[f32],
    n_rows_x: usize,
    w: &PreparedMatrix,
    out: &mut [f32],
) -> Result<()> {
    quant_matmul_prepared_on(&Rayon, x, n_rows_x, w, out, None)
}

/// The 8-bit form of an activation matrix, reused by every product with the same input (a
/// layer's q/k/v projections, its gate/up projections) until [`Self::invalidate`].
#[derive(Debug, Default)]
pub struct QuantizedActs {
    acts: ActBuffer,
    /// Format, rows and columns that `acts` holds, or `None` when stale.
    key: Option<(ActFormat, usize, usize)>,
}

impl QuantizedActs {
    /// Must be called whenever the f32 matrix it was made from changes.
    pub fn invalidate(&mut self) {
        self.key = None;
    }
}

/// [`quant_matmul`] on the threads of `par`, with the quantized `x` from (and into) `cache`
/// where given.
pub(crate) fn quant_matmul_on(
    par: &dyn Parallel,
    x: &[f32],
    n_rows_x: usize,
    w: &QuantMatrix<'_>,
    out: &mut [f32],
    cache: Option<&mut QuantizedActs>,
) -> Result<()> {
    w.validate()?;
    let kernel = kernels::best()
        .get(w.dtype)
        .ok_or_else(|| unsupported(w.dtype))?;
    check_operands(x, n_rows_x, w.dtype, w.rows, w.cols, out)?;
    with_activations(par, cache, w.dtype, x, n_rows_x, w.cols, |acts| {
        // SAFETY: `kernel` comes from `kernels::best()` (features detected) for `w.dtype`, `w`
        // was validated, `acts` holds `n_rows_x` rows of `cols` in the matching format, and
        // `out` was checked to be `n_rows_x × rows`.
        unsafe { multiply_rows(par, kernel, w, acts, out) }
    })
}

/// [`quant_matmul_prepared`] on the threads of `par`, with `cache` as in [`quant_matmul_on`].
pub(crate) fn quant_matmul_prepared_on(
    par: &dyn Parallel,
    x: &[f32],
    n_rows_x: usize,
    w: &PreparedMatrix,
    out: &mut [f32],
    cache: Option<&mut QuantizedActs>,
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
            return quant_matmul_on(par, x, n_rows_x, &m, out, cache);
        }
        Layout::Interleaved(data) => data,
    };
    let kernel = kernels::best()
        .get_packed(dtype)
        .ok_or_else(|| unsupported(dtype))?;
    check_operands(x, n_rows_x, dtype, rows, cols, out)?;
    with_activations(par, cache, dtype, x, n_rows_x, cols, |acts| {
        // SAFETY: as in `quant_matmul_on`; `data` was laid out by `PreparedMatrix::new` for
        // `dtype`, `rows` and `cols`.
        unsafe { multiply_groups(par, kernel, w, data, acts, out) }
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

/// Runs `f` on `x` quantized: taken from `cache` when it already holds `x` in this format,
/// else quantized into `cache`, or, without one, into this thread's reusable buffer (a fresh
/// one when that is in use by an enclosing call). Nothing to do for an empty product.
fn with_activations(
    par: &dyn Parallel,
    cache: Option<&mut QuantizedActs>,
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
    if let Some(cache) = cache {
        let key = Some((format, n, cols));
        if cache.key != key {
            cache.acts.quantize(par, format, x, n, cols);
            cache.key = key;
        }
        f(&cache.acts);
        return Ok(());
    }
    let run = |acts: &mut ActBuffer| {
        acts.quantize(par, format, x, n, cols);
        f(acts);
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut acts) => run(&mut acts),
        Err(_) => run(&mut ActBuffer::default()),
    });
    Ok(())
}

/// Below this many weight bytes per task a task switch costs more than it saves.
const MIN_TASK_BYTES: usize = 16 * 1024;
/// Weight bytes per chunk when several activation tiles reuse it (stays in L2).
const PREFILL_CHUNK_BYTES: usize = 96 * 1024;
/// Quantized activation bytes of one row block: a block stays in L1 while a chunk's weight
/// groups pass over it.
const ROW_BLOCK_BYTES: usize = 24 * 1024;
/// Most activation rows of one block (bounds a stack array of row views).
const MAX_ROW_BLOCK: usize = 64;

/// Output features (or groups) per task.
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

/// How a product is cut into tasks: `chunks` runs of `chunk` output features (or groups), each
/// cut into `splits` runs of row blocks of `block` activation rows.
struct Plan {
    chunk: usize,
    chunks: usize,
    block: usize,
    splits: usize,
    blocks_per_split: usize,
}

impl Plan {
    fn new(units: usize, unit_bytes: usize, n: usize, cols: usize, threads: usize) -> Plan {
        let chunk = chunk_rows(units, unit_bytes, n, threads);
        let chunks = units.div_ceil(chunk);
        let block =
            (ROW_BLOCK_BYTES / cols.max(1)).clamp(MAX_TILE, MAX_ROW_BLOCK) / MAX_TILE * MAX_TILE;
        let blocks = n.div_ceil(block);
        // Row splits only where there are too few chunks to keep every thread busy.
        let splits = (threads * 4).div_ceil(chunks).clamp(1, blocks);
        let blocks_per_split = blocks.div_ceil(splits);
        Plan {
            chunk,
            chunks,
            block,
            splits: blocks.div_ceil(blocks_per_split),
            blocks_per_split,
        }
    }

    fn tasks(&self) -> usize {
        self.chunks * self.splits
    }

    /// Task `t`'s output features (or groups) and activation rows.
    fn task(
        &self,
        t: usize,
        units: usize,
        n: usize,
    ) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (c, s) = (t / self.splits, t % self.splits);
        let rows_per_split = self.blocks_per_split * self.block;
        (
            c * self.chunk..((c + 1) * self.chunk).min(units),
            s * rows_per_split..((s + 1) * rows_per_split).min(n),
        )
    }
}

/// Views of activation rows `r0..r0 + len` (`len ≤ MAX_ROW_BLOCK`), built once per row block.
struct RowViews<'a> {
    views: [MaybeUninit<ActRow<'a>>; MAX_ROW_BLOCK],
    len: usize,
}

impl<'a> RowViews<'a> {
    fn new(acts: &'a ActBuffer, r0: usize, len: usize) -> Self {
        let mut views = [const { MaybeUninit::uninit() }; MAX_ROW_BLOCK];
        let len = len.min(MAX_ROW_BLOCK);
        for (j, v) in views.iter_mut().take(len).enumerate() {
            v.write(acts.row(r0 + j));
        }
        RowViews { views, len }
    }

    fn get(&self) -> &[ActRow<'a>] {
        // SAFETY: the first `len` entries were written in `new`.
        unsafe { std::slice::from_raw_parts(self.views.as_ptr().cast::<ActRow<'a>>(), self.len) }
    }
}

/// # Safety
/// See [`TileFn`]: `kernel` must match `w.dtype` and `acts`' format, and run on this CPU;
/// `w` is validated and `out.len() == acts.rows() * w.rows`.
unsafe fn multiply_rows(
    par: &dyn Parallel,
    kernel: TileFn,
    w: &QuantMatrix<'_>,
    acts: &ActBuffer,
    out: &mut [f32],
) {
    let row_bytes = w.data.len() / w.rows;
    let nb = w.cols / w.dtype.block_size();
    let n = acts.rows();
    let plan = Plan::new(w.rows, row_bytes, n, w.cols, par.threads().max(1));
    let dst = SendPtr(out.as_mut_ptr());
    par.run(plan.tasks(), &|t| {
        let (outs, xrows) = plan.task(t, w.rows, n);
        let mut tile_out = [0.0f32; MAX_TILE];
        for b0 in xrows.clone().step_by(plan.block) {
            let views = RowViews::new(acts, b0, plan.block.min(xrows.end - b0));
            let xs = views.get();
            for (tile, r0) in xs.chunks(MAX_TILE).zip((b0..).step_by(MAX_TILE)) {
                let nx = tile.len();
                for o in outs.clone() {
                    let wrow = &w.data[o * row_bytes..(o + 1) * row_bytes];
                    kernel(wrow, nb, tile, &mut tile_out[..nx]);
                    for (j, &v) in tile_out[..nx].iter().enumerate() {
                        // SAFETY: (r0 + j) < n and o < rows, so the index is inside `out`;
                        // only the task owning these rows and columns writes it.
                        *dst.get().add((r0 + j) * w.rows + o) = v;
                    }
                }
            }
        }
    });
}

/// # Safety
/// As [`multiply_rows`], for interleaved `data` of `w` and a [`GroupFn`] of its type.
unsafe fn multiply_groups(
    par: &dyn Parallel,
    kernel: GroupFn,
    w: &PreparedMatrix,
    data: &[u8],
    acts: &ActBuffer,
    out: &mut [f32],
) {
    let (rows, nb, n) = (w.rows(), w.blocks(), acts.rows());
    let group_bytes = nb * group_block_bytes(w.dtype()).unwrap_or(0);
    let groups = rows.div_ceil(GROUP);
    let plan = Plan::new(groups, group_bytes, n, w.cols(), par.threads().max(1));
    let dst = SendPtr(out.as_mut_ptr());
    par.run(plan.tasks(), &|t| {
        let (gs, xrows) = plan.task(t, groups, n);
        for b0 in xrows.clone().step_by(plan.block) {
            let views = RowViews::new(acts, b0, plan.block.min(xrows.end - b0));
            for g in gs.clone() {
                let gdata = &data[g * group_bytes..(g + 1) * group_bytes];
                let valid = GROUP.min(rows - g * GROUP);
                // SAFETY: rows b0.. of this block are < n and columns g·16 .. g·16 + valid
                // ≤ rows, inside `out` with row stride `rows`; only this task writes them.
                let at = dst.get().add(b0 * rows + g * GROUP);
                kernel(gdata, nb, views.get(), at, rows, valid);
            }
        }
    });
}
