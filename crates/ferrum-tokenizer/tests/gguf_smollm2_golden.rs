//! llama.cpp's token ids for the default model (SmolLM2-135M-Instruct, GGUF `gpt2` vocabulary,
//! pre-tokenizer `smollm`) against ours.
//!
//! The vocabulary comes from a JSON dump of the GGUF `tokenizer.*` metadata named by
//! `FERRUM_SMOLLM2_VOCAB_JSON` (keys as in the GGUF file); the test is skipped when the variable
//! is unset or the file is missing. The dump is written by
//! `python3 crates/ferrum-tokenizer/tests/fixtures/dump_gguf_vocab.py MODEL.gguf OUT.json`.

use std::path::{Path, PathBuf};

use ferrum_tokenizer::{GgufVocab, IncrementalDecoder, Tokenizer};
use serde_json::Value;

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/golden/smollm2-tokenizer-llamacpp.json")
}

fn vocab_from_dump(path: &Path) -> GgufVocab {
    let text = std::fs::read_to_string(path).expect("vocab dump is readable");
    let meta: Value = serde_json::from_str(&text).expect("vocab dump is JSON");
    let strings = |key: &str| -> Option<Vec<String>> {
        meta.get(key).and_then(Value::as_array).map(|items| {
            items
                .iter()
                .map(|item| item.as_str().expect("string item").to_string())
                .collect()
        })
    };
    let id = |key: &str| meta.get(key).and_then(Value::as_u64).map(|v| v as u32);
    let flag = |key: &str| meta.get(key).and_then(Value::as_bool);
    GgufVocab {
        model: meta["tokenizer.ggml.model"]
            .as_str()
            .expect("model")
            .to_string(),
        pre: meta
            .get("tokenizer.ggml.pre")
            .and_then(Value::as_str)
            .map(str::to_string),
        tokens: strings("tokenizer.ggml.tokens").expect("tokens"),
        scores: meta
            .get("tokenizer.ggml.scores")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|v| v.as_f64().expect("score") as f32)
                    .collect()
            }),
        token_types: meta
            .get("tokenizer.ggml.token_type")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|v| v.as_i64().expect("type") as i32)
                    .collect()
            }),
        merges: strings("tokenizer.ggml.merges"),
        bos_token_id: id("tokenizer.ggml.bos_token_id"),
        eos_token_id: id("tokenizer.ggml.eos_token_id"),
        unknown_token_id: id("tokenizer.ggml.unknown_token_id"),
        padding_token_id: id("tokenizer.ggml.padding_token_id"),
        add_bos_token: flag("tokenizer.ggml.add_bos_token"),
        add_eos_token: flag("tokenizer.ggml.add_eos_token"),
        add_space_prefix: flag("tokenizer.ggml.add_space_prefix"),
    }
}

fn tokenizer() -> Option<Tokenizer> {
    let path = std::env::var_os("FERRUM_SMOLLM2_VOCAB_JSON").map(PathBuf::from)?;
    if !path.is_file() {
        eprintln!("skipped: {} does not exist", path.display());
        return None;
    }
    Some(Tokenizer::from_gguf_vocab(vocab_from_dump(&path)).expect("tokenizer builds"))
}

fn golden() -> Vec<(String, Vec<u32>)> {
    let text = std::fs::read_to_string(golden_path()).expect("golden file is readable");
    let cases: Value = serde_json::from_str(&text).expect("golden file is JSON");
    cases
        .as_array()
        .expect("list of cases")
        .iter()
        .map(|case| {
            let ids = case["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|id| id.as_u64().expect("id") as u32)
                .collect();
            (case["text"].as_str().expect("text").to_string(), ids)
        })
        .collect()
}

#[test]
fn ids_match_llama_cpp() {
    let Some(tokenizer) = tokenizer() else {
        eprintln!("skipped: FERRUM_SMOLLM2_VOCAB_JSON not set");
        return;
    };
    assert!(!tokenizer.add_bos_token());
    let mut failures = Vec::new();
    let cases = golden();
    for (text, expected) in &cases {
        let ids = tokenizer.encode(text, true).expect("encodes");
        if &ids != expected {
            failures.push(format!(
                "{text:?}\n  ours:      {ids:?}\n  llama.cpp: {expected:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn decode_round_trips_and_streams() {
    let Some(tokenizer) = tokenizer() else {
        return;
    };
    for (text, ids) in golden() {
        assert_eq!(tokenizer.decode(&ids, false).expect("decodes"), text);
        let mut decoder = IncrementalDecoder::new(false);
        let mut streamed = String::new();
        for id in &ids {
            let piece = decoder.step(&tokenizer, &[*id]).expect("steps");
            assert!(
                !piece.contains('\u{FFFD}'),
                "{text:?}: emitted half a character"
            );
            streamed.push_str(&piece);
        }
        streamed.push_str(&decoder.finish(&tokenizer).expect("finishes"));
        assert_eq!(streamed, text);
    }
}
