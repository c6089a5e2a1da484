//! SentencePiece BPE models against SentencePiece's own ids (fixture written by
//! `tests/fixtures/make_sentencepiece_fixture.py`): the `tokenizer.model` path, and the same
//! pieces fed in as a GGUF `llama` vocabulary.

use std::path::{Path, PathBuf};

use ferrum_tokenizer::{GgufVocab, IncrementalDecoder, Tokenizer, TokenizerConfig, TokenizerError};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("sentencepiece_expected.json"))
        .expect("expected ids are readable");
    serde_json::from_str(&text).expect("expected ids are JSON")
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_u64().expect("id") as u32)
        .collect()
}

fn check_model(tokenizer: &Tokenizer, cases: &Value, check_decode: bool) {
    let mut failures = Vec::new();
    for case in cases.as_array().expect("cases") {
        let text = case["text"].as_str().expect("text");
        let want = ids(&case["ids"]);
        let got = tokenizer.encode(text, false).expect("encodes");
        if got != want {
            failures.push(format!("{text:?}: ours {got:?}, SentencePiece {want:?}"));
            continue;
        }
        if check_decode {
            let decoded = tokenizer.decode(&got, false).expect("decodes");
            let want_text = case["decoded"].as_str().expect("decoded");
            if decoded != want_text {
                failures.push(format!(
                    "{text:?}: decoded {decoded:?}, SentencePiece {want_text:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn byte_fallback_model_matches_sentencepiece() {
    let path = fixtures().join("spm_bytefallback.model");
    let tokenizer = Tokenizer::from_sentencepiece_file(&path, &TokenizerConfig::default())
        .expect("model loads");
    assert_eq!(tokenizer.bos_token_id(), Some(1));
    assert_eq!(tokenizer.eos_token_id(), Some(2));
    assert!(tokenizer.add_bos_token());
    check_model(&tokenizer, &expected()["spm_bytefallback.model"], true);
    assert_eq!(tokenizer.encode("Hello", true).expect("encodes")[0], 1);
}

#[test]
fn nfkc_model_with_unknowns_matches_sentencepiece() {
    let path = fixtures().join("spm_nmt.model");
    let tokenizer = Tokenizer::from_sentencepiece_file(&path, &TokenizerConfig::default())
        .expect("model loads");
    // Unknown pieces decode to "<unk>" here and to " ⁇ " in SentencePiece: compare ids only.
    check_model(&tokenizer, &expected()["spm_nmt.model"], false);
}

fn gguf_llama_vocab() -> GgufVocab {
    let meta = &expected()["spm_bytefallback_as_gguf"];
    GgufVocab {
        model: "llama".into(),
        tokens: meta["tokenizer.ggml.tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|t| t.as_str().expect("token").to_string())
            .collect(),
        scores: Some(
            meta["tokenizer.ggml.scores"]
                .as_array()
                .expect("scores")
                .iter()
                .map(|s| s.as_f64().expect("score") as f32)
                .collect(),
        ),
        token_types: Some(
            meta["tokenizer.ggml.token_type"]
                .as_array()
                .expect("types")
                .iter()
                .map(|t| t.as_i64().expect("type") as i32)
                .collect(),
        ),
        bos_token_id: Some(1),
        eos_token_id: Some(2),
        unknown_token_id: Some(0),
        ..GgufVocab::default()
    }
}

#[test]
fn gguf_llama_vocabulary_matches_sentencepiece() {
    let tokenizer = Tokenizer::from_gguf_vocab(gguf_llama_vocab()).expect("vocab builds");
    assert!(
        tokenizer.add_bos_token(),
        "llama.cpp adds BOS by default for llama vocabularies"
    );
    check_model(&tokenizer, &expected()["spm_bytefallback.model"], true);
}

#[test]
fn streaming_sentencepiece_text_keeps_spaces_and_whole_characters() {
    let tokenizer = Tokenizer::from_gguf_vocab(gguf_llama_vocab()).expect("vocab builds");
    for text in [
        "emoji 😀 and 你好 are unseen",
        "Hello   world  ",
        " Hello world",
    ] {
        let ids = tokenizer.encode(text, true).expect("encodes");
        let mut decoder = IncrementalDecoder::new(true);
        let mut streamed = String::new();
        for id in &ids {
            let piece = decoder.step(&tokenizer, &[*id]).expect("steps");
            assert!(
                !piece.contains('\u{FFFD}'),
                "{text:?}: half a character in {piece:?}"
            );
            streamed.push_str(&piece);
        }
        streamed.push_str(&decoder.finish(&tokenizer).expect("finishes"));
        assert_eq!(
            streamed,
            tokenizer.decode(&ids, true).expect("decodes"),
            "{text:?}"
        );
        assert_eq!(streamed, text);
    }
}

#[test]
fn unigram_models_are_refused_clearly() {
    // A one-piece ModelProto whose trainer_spec says model_type = UNIGRAM (1).
    let piece = [0x0a, 0x01, b'a'];
    let mut model = vec![0x0a, piece.len() as u8];
    model.extend_from_slice(&piece);
    model.extend_from_slice(&[0x12, 0x02, 0x18, 0x01]);
    let err = Tokenizer::from_sentencepiece(&model, &TokenizerConfig::default())
        .expect_err("unigram is refused");
    assert!(
        matches!(err, TokenizerError::Unsupported(ref m) if m.contains("unigram")),
        "{err}"
    );
}
