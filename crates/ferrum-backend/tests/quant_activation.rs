//! The 8-bit activation quantizers against a numpy reimplementation of llama.cpp's x86
//! `quantize_row_q8_0`/`q8_1` and `quantize_row_q8_K_ref` (fixtures from
//! `scripts/fixtures/quant_make_fixtures.py`, which include exact ties and blocks where
//! llama.cpp's portable rounding would differ). Byte-for-byte equality.

use ferrum_backend::cpu::quant::{quantize_row_q8_0, quantize_row_q8_1, quantize_row_q8_k};

mod quant_common;
use quant_common::{read_bytes, read_f32};

fn check(name: &str, block_bytes: usize, f: fn(&[f32], &mut [u8]) -> ferrum_backend::Result<()>) {
    let x = read_f32(&format!("{name}.bin"));
    let want = read_bytes(&format!("{name}.q"));
    let mut got = vec![0u8; want.len()];
    f(&x, &mut got).unwrap();
    for (b, (g, w)) in got
        .chunks(block_bytes)
        .zip(want.chunks(block_bytes))
        .enumerate()
    {
        assert_eq!(g, w, "{name}: block {b} differs");
    }
}

#[test]
fn q8_0_matches_llama_cpp() {
    check("act_q8_0", 34, quantize_row_q8_0);
}

#[test]
fn q8_1_matches_llama_cpp() {
    check("act_q8_1", 36, quantize_row_q8_1);
}

#[test]
fn q8_k_matches_llama_cpp() {
    check("act_q8_k", 292, quantize_row_q8_k);
}

#[test]
fn sizes_are_checked() {
    let mut out = vec![0u8; 34];
    assert!(quantize_row_q8_0(&[0.0; 31], &mut out).is_err());
    assert!(quantize_row_q8_0(&[0.0; 32], &mut out[..33]).is_err());
    assert!(quantize_row_q8_k(&[0.0; 32], &mut out).is_err());
}
