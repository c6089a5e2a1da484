//! Logits of random-weight Llama, Qwen2 and Qwen3 models (written by `ferrum-testkit`) against
//! an independent float64 numpy implementation (`scripts/reference/decoder_numpy.py`), whose
//! outputs are committed in `crates/ferrum-testkit/fixtures/reference_logits.json`.
//!
//! The 100-token prompt is run in three chunks whose last tokens are the reference positions,
//! so chunked prefill over a paged (shuffled) block table is checked too.

mod common;

use ferrum_executor::SeqInput;
use ferrum_model::ModelBundle;
use serde_json::Value;

fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - y).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

#[test]
fn tiny_models_match_numpy_reference() {
    let path =
        common::workspace_root().join("crates/ferrum-testkit/fixtures/reference_logits.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut worst = 0.0f64;
    for case in fixture["cases"].as_array().unwrap() {
        let preset = case["preset"].as_str().unwrap();
        let seed = case["seed"].as_u64().unwrap();
        let spec = ferrum_testkit::preset(preset).unwrap().with_seed(seed);
        let dir = tempfile::tempdir().unwrap();
        ferrum_testkit::write_test_model(dir.path(), &spec).unwrap();
        let hash = ferrum_testkit::fnv1a64_file(&dir.path().join("model.safetensors")).unwrap();
        assert_eq!(
            format!("{hash:016x}"),
            case["safetensors_fnv1a64"].as_str().unwrap(),
            "{preset}: the generator no longer writes the weights the fixture was made from"
        );
        let bundle = ModelBundle::open(dir.path()).unwrap();
        for prompt in case["prompts"].as_array().unwrap() {
            let ids: Vec<u32> = serde_json::from_value(prompt["token_ids"].clone()).unwrap();
            let positions: Vec<usize> =
                serde_json::from_value(prompt["positions"].clone()).unwrap();
            let mut runner = common::runner(&bundle, ids.len(), 2);
            let blocks = ids.len().div_ceil(common::BLOCK_SIZE);
            let table: Vec<u32> = (0..blocks as u32).rev().collect();
            let mut done = 0;
            for (k, &pos) in positions.iter().enumerate() {
                let logits = runner
                    .execute(&[SeqInput {
                        tokens: &ids[done..=pos],
                        num_computed_tokens: done,
                        block_table: &table,
                        want_logits: true,
                    }])
                    .unwrap();
                done = pos + 1;
                let want: Vec<f64> = serde_json::from_value(prompt["logits"][k].clone()).unwrap();
                let e = rel_err(&logits, &want);
                worst = worst.max(e);
                assert!(
                    e < 1e-4,
                    "{preset} seed {seed} {} pos {pos}: relative error {e:e}",
                    prompt["name"]
                );
            }
        }
    }
    eprintln!("worst relative error {worst:e}");
}
