//! `tokenizer.json` + `tokenizer_config.json` sources and the model-directory loader.

use std::path::Path;

use ferrum_tokenizer::{Tokenizer, TokenizerConfig, TokenizerError, TokenizerFiles};
use serde_json::json;

/// A tiny byte-level BPE in the format transformers writes, with a Llama-3-style post-processor
/// that adds `<|begin_of_text|>`, and a truncation setting that must not apply.
fn tokenizer_json() -> serde_json::Value {
    let special = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": 2, "strategy": "LongestFirst", "stride": 0},
        "padding": null,
        "added_tokens": [special(0, "<|begin_of_text|>"), special(1, "<|eot_id|>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [0],
                                                     "tokens": ["<|begin_of_text|>"]}}
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": {"<|begin_of_text|>": 0, "<|eot_id|>": 1, "h": 2, "i": 3, "Ġ": 4, "t": 5, "e": 6,
                      "r": 7, "hi": 8, "Ġt": 9, "he": 10, "Ġthe": 11, "re": 12, "Ġthere": 13},
            "merges": ["h i", "Ġ t", "h e", "Ġt he", "r e", "Ġthe re"]
        }
    })
}

fn bytes() -> Vec<u8> {
    serde_json::to_vec(&tokenizer_json()).expect("serializes")
}

#[test]
fn post_processor_decides_bos_when_the_config_is_silent() {
    let tokenizer =
        Tokenizer::from_tokenizer_json(&bytes(), &TokenizerConfig::default()).expect("builds");
    assert_eq!(
        tokenizer.bos_token_id(),
        Some(0),
        "BOS inferred from the post-processor"
    );
    assert!(tokenizer.add_bos_token());
    assert_eq!(
        tokenizer.encode("hi there", false).expect("encodes"),
        vec![8, 13]
    );
    // Truncation to 2 tokens from the file is ignored.
    assert_eq!(
        tokenizer.encode("hi there hi", true).expect("encodes"),
        vec![0, 8, 13, 4, 8]
    );
    assert_eq!(
        tokenizer
            .encode("hi<|eot_id|>there", false)
            .expect("encodes"),
        vec![8, 1, 5, 10, 12]
    );
    assert_eq!(
        tokenizer.decode(&[0, 8, 13, 1], true).expect("decodes"),
        "hi there"
    );
    assert_eq!(
        tokenizer.decode(&[0, 8, 13, 1], false).expect("decodes"),
        "<|begin_of_text|>hi there<|eot_id|>"
    );
    assert_eq!(tokenizer.special_token_ids(), &[0, 1]);
    assert_eq!(tokenizer.vocab_size(), 14);
    assert_eq!(tokenizer.token_to_id("Ġthere"), Some(13));
    assert_eq!(tokenizer.id_to_token(8).as_deref(), Some("hi"));
}

#[test]
fn config_flags_override_the_post_processor() {
    let config = TokenizerConfig::from_json(
        br#"{"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>"},
             "add_bos_token": false, "add_eos_token": true}"#,
    )
    .expect("config parses");
    let tokenizer = Tokenizer::from_tokenizer_json(&bytes(), &config).expect("builds");
    assert_eq!(tokenizer.eos_token_id(), Some(1));
    assert_eq!(tokenizer.encode("hi", true).expect("encodes"), vec![8, 1]);
}

#[test]
fn broken_tokenizer_json_is_a_typed_error() {
    let err = Tokenizer::from_tokenizer_json(b"{not json", &TokenizerConfig::default())
        .expect_err("invalid");
    assert!(matches!(err, TokenizerError::TokenizerJson(_)), "{err:?}");
}

fn write(dir: &Path, name: &str, contents: &[u8]) {
    std::fs::write(dir.join(name), contents).expect("fixture file is written");
}

#[test]
fn loader_picks_files_and_chat_templates() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "tokenizer.json", &bytes());
    write(
        dir.path(),
        "tokenizer_config.json",
        br#"{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
             "chat_template": [{"name": "default", "template": "config default"},
                               {"name": "tool_use", "template": "config tools"}]}"#,
    );
    let loaded = TokenizerFiles::discover(dir.path())
        .expect("found")
        .load()
        .expect("loads");
    assert_eq!(
        loaded.chat_templates.select(None, false),
        Some("config default")
    );
    assert_eq!(
        loaded.chat_templates.select(None, true),
        Some("config tools")
    );
    assert_eq!(loaded.tokenizer.eos_token_id(), Some(1));

    write(
        dir.path(),
        "chat_template.jinja",
        b"{{ messages[0].content }}",
    );
    let loaded = TokenizerFiles::discover(dir.path())
        .expect("found")
        .load()
        .expect("loads");
    assert_eq!(
        loaded.chat_templates.default_template(),
        Some("{{ messages[0].content }}"),
        "chat_template.jinja wins over tokenizer_config.json"
    );
    assert_eq!(
        loaded.chat_templates.select(None, true),
        Some("config tools")
    );
}

#[test]
fn loader_falls_back_to_tokenizer_model_and_reports_missing_files() {
    let empty = tempfile::tempdir().expect("temp dir");
    let err = TokenizerFiles::discover(empty.path()).expect_err("nothing there");
    assert!(matches!(err, TokenizerError::NotFound(_)), "{err:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let model = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spm_bytefallback.model"),
    )
    .expect("fixture model");
    write(dir.path(), "tokenizer.model", &model);
    write(
        dir.path(),
        "special_tokens_map.json",
        br#"{"eos_token": "</s>"}"#,
    );
    let loaded = TokenizerFiles::discover(dir.path())
        .expect("found")
        .load()
        .expect("loads");
    assert_eq!(loaded.tokenizer.eos_token_id(), Some(2));
    assert!(loaded.chat_templates.is_empty());
}
