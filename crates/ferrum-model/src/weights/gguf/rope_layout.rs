//! Undoing the Q/K row permutation of llama-architecture GGUF files.
//!
//! Hugging Face Llama checkpoints rotate the two halves of each head (`rotate_half`), while
//! llama.cpp's `llama` architecture rotates adjacent pairs; its converter therefore reorders the
//! rows of `q_proj`/`k_proj` (weights and biases) within each head: HF row `two * half + j`
//! becomes GGUF row `2 * j + two`. Reversing it gives back the Hugging Face layout, so one model
//! implementation (with the half-split rotary style) serves both formats. Rows are whole blocks,
//! so this works on quantized data too.

/// HF-ordered copy of `data` (`rows` rows of equal byte length, `n_heads` heads), or `None` when
/// the sizes do not divide as a per-head permutation needs.
pub fn unpermute_rows(data: &[u8], rows: usize, n_heads: usize) -> Option<Vec<u8>> {
    if rows == 0
        || n_heads == 0
        || !data.len().is_multiple_of(rows)
        || !rows.is_multiple_of(n_heads)
    {
        return None;
    }
    let head_dim = rows / n_heads;
    if !head_dim.is_multiple_of(2) {
        return None;
    }
    let row_bytes = data.len() / rows;
    let half = head_dim / 2;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..n_heads {
        for two in 0..2 {
            for j in 0..half {
                let src = (h * head_dim + 2 * j + two) * row_bytes;
                out.extend_from_slice(&data[src..src + row_bytes]);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::unpermute_rows;

    /// The converter's permutation, written independently: reshape (heads, 2, half) → swap the
    /// last two axes → flatten.
    fn permute(rows: &[u8], n_heads: usize) -> Vec<u8> {
        let hd = rows.len() / n_heads;
        let half = hd / 2;
        let mut out = vec![0; rows.len()];
        for h in 0..n_heads {
            for two in 0..2 {
                for j in 0..half {
                    out[h * hd + j * 2 + two] = rows[h * hd + two * half + j];
                }
            }
        }
        out
    }

    #[test]
    fn inverts_the_converter_permutation() {
        let hf: Vec<u8> = (0..24).collect();
        for heads in [1, 2, 3, 6] {
            let gguf = permute(&hf, heads);
            assert_eq!(unpermute_rows(&gguf, 24, heads).as_deref(), Some(&hf[..]));
        }
    }

    #[test]
    fn moves_whole_rows() {
        // 4 rows of 3 bytes, one head: GGUF rows [r0, r2, r1, r3] hold HF rows [0, 1, 2, 3]
        // as [0, 2, 1, 3].
        let gguf = [0, 0, 0, 2, 2, 2, 1, 1, 1, 3, 3, 3];
        let hf = unpermute_rows(&gguf, 4, 1);
        assert_eq!(
            hf.as_deref(),
            Some(&[0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3][..])
        );
    }

    #[test]
    fn rejects_uneven_sizes() {
        assert_eq!(unpermute_rows(&[0; 12], 4, 3), None);
        assert_eq!(unpermute_rows(&[0; 10], 4, 1), None);
        assert_eq!(unpermute_rows(&[0; 6], 6, 2), None);
    }
}
