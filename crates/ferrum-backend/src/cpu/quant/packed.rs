//! Weights re-laid-out once at load time in groups of 16 output rows ("interleaved"), so that one
//! vector instruction multiplies 16 rows at once against a broadcast activation quad.
//!
//! Layout (Q4_0, Q4_1 and Q8_0; other types stay in GGUF row layout): the matrix is cut into groups of
//! [`GROUP`] consecutive rows (the last one padded with zero blocks), each group stored as its
//! blocks in order. One group-block:
//! - Q4_1, 320 bytes: `qs[4][16][4]` then `d[16]: f16` then `m[16]: f16`. Chunk `c`, row `r`
//!   holds GGUF bytes `qs[4c..4c + 4]` of row `r`: low nibbles are quants `4c..4c + 4`, high
//!   nibbles quants `16 + 4c..16 + 4c + 4`.
//! - Q4_0, 288 bytes: as Q4_1 without `m`.
//! - Q8_0, 544 bytes: `qs[8][16][4]` (chunk `c` = quants `4c..4c + 4` of each row, signed) then
//!   `d[16]: f16`.
//!
//! Invariants: the bytes are the GGUF bytes, only moved, so decoding a row of a prepared matrix
//! gives exactly the values of the original row; the same byte budget per row as GGUF.

use ferrum_types::DType;

use super::dequant::dequantize_row;
use super::layout::{Q4_0_BYTES, Q4_1_BYTES, Q8_0_BYTES, QK};
use super::matmul::QuantMatrix;
use crate::{BackendError, Result};

/// Output rows per interleaved group.
pub const GROUP: usize = 16;
pub const Q4_0_GROUP_BYTES: usize = GROUP * Q4_0_BYTES;
pub const Q4_1_GROUP_BYTES: usize = GROUP * Q4_1_BYTES;
pub const Q8_0_GROUP_BYTES: usize = GROUP * Q8_0_BYTES;

/// A quantized matrix owned and laid out for [`super::quant_matmul_prepared`].
#[derive(Debug, Clone)]
pub struct PreparedMatrix {
    dtype: DType,
    rows: usize,
    cols: usize,
    layout: Layout,
}

#[derive(Debug, Clone)]
pub(crate) enum Layout {
    /// GGUF rows as stored (types without an interleaved kernel).
    Rows(Vec<u8>),
    /// Groups of [`GROUP`] rows, see the module docs.
    Interleaved(Vec<u8>),
}

/// Bytes of one interleaved group-block, or `None` where the type keeps GGUF rows.
pub(crate) fn group_block_bytes(dtype: DType) -> Option<usize> {
    match dtype {
        DType::Q4_0 => Some(Q4_0_GROUP_BYTES),
        DType::Q4_1 => Some(Q4_1_GROUP_BYTES),
        DType::Q8_0 => Some(Q8_0_GROUP_BYTES),
        _ => None,
    }
}

impl PreparedMatrix {
    /// Copies `w` into the fastest layout its type has (validating it first).
    pub fn new(w: &QuantMatrix<'_>) -> Result<Self> {
        Self::with_layout(w, true)
    }

    /// Copies `w` keeping GGUF rows, whose kernels sum in llama.cpp's `vec_dot` order.
    pub fn gguf_rows(w: &QuantMatrix<'_>) -> Result<Self> {
        Self::with_layout(w, false)
    }

    fn with_layout(w: &QuantMatrix<'_>, interleave_rows: bool) -> Result<Self> {
        w.validate()?;
        if !w.dtype.is_quantized() {
            return Err(BackendError::UnsupportedDType {
                op: "PreparedMatrix",
                dtype: w.dtype,
            });
        }
        let layout = match group_block_bytes(w.dtype).filter(|_| interleave_rows) {
            Some(gbb) => Layout::Interleaved(interleave(w, gbb)),
            None => Layout::Rows(w.data.to_vec()),
        };
        Ok(PreparedMatrix {
            dtype: w.dtype,
            rows: w.rows,
            cols: w.cols,
            layout,
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held (for memory accounting).
    pub fn size_bytes(&self) -> usize {
        match &self.layout {
            Layout::Rows(d) | Layout::Interleaved(d) => d.len(),
        }
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Blocks per row.
    pub(crate) fn blocks(&self) -> usize {
        self.cols / self.dtype.block_size()
    }

    /// Decodes row `r` (`out.len() == cols`), e.g. for an embedding lookup in a tied table.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        if r >= self.rows || out.len() != self.cols {
            return Err(BackendError::Shape {
                what: format!("row of a {}×{} {} matrix", self.rows, self.cols, self.dtype),
                expected: format!("row < {} into {} values", self.rows, self.cols),
                got: format!("row {r} into {} values", out.len()),
            });
        }
        let bb = self.dtype.block_bytes();
        match &self.layout {
            Layout::Rows(d) => {
                let rb = self.blocks() * bb;
                dequantize_row(self.dtype, &d[r * rb..(r + 1) * rb], out)
            }
            Layout::Interleaved(d) => {
                let gbb = bb * GROUP;
                let group = &d[(r / GROUP) * self.blocks() * gbb..];
                let mut raw = [0u8; Q8_0_BYTES];
                for (b, o) in out.chunks_exact_mut(QK).enumerate() {
                    let gb = &group[b * gbb..(b + 1) * gbb];
                    extract_block(self.dtype, gb, r % GROUP, &mut raw[..bb]);
                    dequantize_row(self.dtype, &raw[..bb], o)?;
                }
                Ok(())
            }
        }
    }
}

/// Moves every row's blocks into 16-row groups.
fn interleave(w: &QuantMatrix<'_>, gbb: usize) -> Vec<u8> {
    let bb = w.dtype.block_bytes();
    let nb = w.cols / w.dtype.block_size();
    let groups = w.rows.div_ceil(GROUP);
    let mut out = vec![0u8; groups * nb * gbb];
    for (g, group) in out.chunks_exact_mut(nb * gbb).enumerate() {
        for (b, gb) in group.chunks_exact_mut(gbb).enumerate() {
            for r in 0..GROUP.min(w.rows - g * GROUP) {
                let at = (g * GROUP + r) * nb * bb + b * bb;
                insert_block(w.dtype, &w.data[at..at + bb], r, gb);
            }
        }
    }
    out
}

/// Writes GGUF block `raw` as row `r` of group-block `gb`.
fn insert_block(dtype: DType, raw: &[u8], r: usize, gb: &mut [u8]) {
    match dtype {
        DType::Q4_0 => {
            for c in 0..4 {
                gb[c * 64 + r * 4..c * 64 + r * 4 + 4].copy_from_slice(&raw[2 + 4 * c..6 + 4 * c]);
            }
            gb[256 + 2 * r..258 + 2 * r].copy_from_slice(&raw[0..2]);
        }
        DType::Q4_1 => {
            for c in 0..4 {
                gb[c * 64 + r * 4..c * 64 + r * 4 + 4].copy_from_slice(&raw[4 + 4 * c..8 + 4 * c]);
            }
            gb[256 + 2 * r..258 + 2 * r].copy_from_slice(&raw[0..2]);
            gb[288 + 2 * r..290 + 2 * r].copy_from_slice(&raw[2..4]);
        }
        DType::Q8_0 => {
            for c in 0..8 {
                gb[c * 64 + r * 4..c * 64 + r * 4 + 4].copy_from_slice(&raw[2 + 4 * c..6 + 4 * c]);
            }
            gb[512 + 2 * r..514 + 2 * r].copy_from_slice(&raw[0..2]);
        }
        _ => {}
    }
}

/// Inverse of [`insert_block`].
fn extract_block(dtype: DType, gb: &[u8], r: usize, raw: &mut [u8]) {
    match dtype {
        DType::Q4_0 => {
            for c in 0..4 {
                raw[2 + 4 * c..6 + 4 * c].copy_from_slice(&gb[c * 64 + r * 4..c * 64 + r * 4 + 4]);
            }
            raw[0..2].copy_from_slice(&gb[256 + 2 * r..258 + 2 * r]);
        }
        DType::Q4_1 => {
            for c in 0..4 {
                raw[4 + 4 * c..8 + 4 * c].copy_from_slice(&gb[c * 64 + r * 4..c * 64 + r * 4 + 4]);
            }
            raw[0..2].copy_from_slice(&gb[256 + 2 * r..258 + 2 * r]);
            raw[2..4].copy_from_slice(&gb[288 + 2 * r..290 + 2 * r]);
        }
        DType::Q8_0 => {
            for c in 0..8 {
                raw[2 + 4 * c..6 + 4 * c].copy_from_slice(&gb[c * 64 + r * 4..c * 64 + r * 4 + 4]);
            }
            raw[0..2].copy_from_slice(&gb[512 + 2 * r..514 + 2 * r]);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::quant::kernels::tests::{random_blocks, Rng};

    #[test]
    fn rows_decode_the_same_after_preparing() {
        let mut rng = Rng(21);
        for dtype in [DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4K] {
            let (rows, cols) = (21, 2 * dtype.block_size());
            let data = random_blocks(dtype, rows * cols / dtype.block_size(), &mut rng);
            let w = QuantMatrix {
                dtype,
                rows,
                cols,
                data: &data,
            };
            let p = PreparedMatrix::new(&w).unwrap();
            let rb = data.len() / rows;
            let (mut a, mut b) = (vec![0.0; cols], vec![0.0; cols]);
            for r in 0..rows {
                dequantize_row(dtype, &data[r * rb..(r + 1) * rb], &mut a).unwrap();
                p.dequantize_row(r, &mut b).unwrap();
                assert_eq!(a, b, "{dtype} row {r}");
            }
            assert!(p.dequantize_row(rows, &mut b).is_err());
        }
    }
}
