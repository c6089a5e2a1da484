//! `dequantize_row` against gguf-py's `gguf.quants.dequantize` on real tensors of the default
//! model and on random valid blocks of every weight type (fixtures from
//! `scripts/fixtures/quant_make_fixtures.py`). Equality is exact: both sides do the same f32
//! operations in the same order.

use ferrum_backend::cpu::quant::dequantize_row;
use ferrum_types::DType;

mod quant_common;
use quant_common::{fixture_dir, read_bytes, read_f32};

fn dtype(name: &str) -> Option<DType> {
    Some(match name {
        "Q4_0" => DType::Q4_0,
        "Q4_1" => DType::Q4_1,
        "Q8_0" => DType::Q8_0,
        "Q4_K" => DType::Q4K,
        "Q5_K" => DType::Q5K,
        "Q6_K" => DType::Q6K,
        _ => return None,
    })
}

#[test]
fn dequantize_matches_gguf_py() {
    let manifest = std::fs::read_to_string(fixture_dir().join("manifest.txt")).unwrap();
    let mut checked = Vec::new();
    for line in manifest.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(dt) = dtype(f[1]) else { continue };
        let n: usize = f[2].parse().unwrap();
        let blocks = read_bytes(&format!("{}.bin", f[0]));
        let want = read_f32(&format!("{}.f32", f[0]));
        assert_eq!(want.len(), n);
        let mut got = vec![f32::NAN; n];
        dequantize_row(dt, &blocks, &mut got).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{}: element {i}: {g} vs {w}",
                f[0]
            );
        }
        checked.push(f[1]);
    }
    for t in ["Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"] {
        assert!(checked.contains(&t), "no fixture for {t}");
    }
}

#[test]
fn dense_rows_decode() {
    let mut out = [0.0f32; 2];
    let f16: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    dequantize_row(DType::F16, &f16, &mut out).unwrap();
    assert_eq!(out, [1.5, -2.0]);
    let bf16: Vec<u8> = [0.25f32, 3.0]
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    dequantize_row(DType::BF16, &bf16, &mut out).unwrap();
    assert_eq!(out, [0.25, 3.0]);
    let f32b: Vec<u8> = [7.0f32, -0.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    dequantize_row(DType::F32, &f32b, &mut out).unwrap();
    assert_eq!(out, [7.0, -0.5]);
}

/// With the default model present, every row of its embedding decodes without error and
/// agrees with the committed fixture rows (guards against a re-exported model).
#[test]
fn embedding_rows_of_the_default_model() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!("skipped: {} not present", path.display());
        return;
    };
    // Find the fixture's first embedding row inside the file: it is stored verbatim.
    let row0 = &read_bytes("real_q8_0_token_embd_rows0_1.bin")[..612];
    let at = bytes
        .windows(612)
        .position(|w| w == row0)
        .expect("embedding row 0 in model");
    let mut out = vec![0.0f32; 576];
    for r in [0usize, 1, 30000, 49151] {
        let row = &bytes[at + r * 612..at + (r + 1) * 612];
        dequantize_row(DType::Q8_0, row, &mut out).unwrap();
        assert!(out.iter().all(|v| v.is_finite()));
    }
    let want = read_f32("real_q8_0_token_embd_row30000.f32");
    dequantize_row(
        DType::Q8_0,
        &bytes[at + 30000 * 612..at + 30001 * 612],
        &mut out,
    )
    .unwrap();
    assert_eq!(out, want);
}
