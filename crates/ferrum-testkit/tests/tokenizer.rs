//! The written tokenizer.json files load in the `tokenizers` library and agree with config.json.

use std::path::Path;

use ferrum_testkit::{preset, tiny_llama, tiny_qwen3, write_test_model, TestModelSpec};
use tokenizers::Tokenizer;

const TEXTS: &[&str] = &[
    "Hello, world! The quick brown fox.",
    "It's 2024: 3.14159 and 1,000,000 tokens.",
    "  two spaces\n\nnew lines\ttabs",
    "café 東京 привет 🙂",
    "def add(a, b):\n    return a + b\n",
];

fn write(spec: &TestModelSpec) -> (tempfile::TempDir, Tokenizer, serde_json::Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_test_model(dir.path(), spec).expect("write");
    let tok = Tokenizer::from_file(dir.path().join("tokenizer.json")).expect("tokenizer loads");
    let config = read_json(&dir.path().join("config.json"));
    (dir, tok, config)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

#[test]
fn tiny_tokenizers_round_trip_and_fit_the_vocab() {
    for name in ["tiny_llama", "tiny_llama2", "tiny_qwen2", "tiny_qwen3"] {
        let (_dir, tok, config) = write(&preset(name).expect("preset"));
        let size = tok.get_vocab_size(true);
        assert!((300..=1000).contains(&size), "{name}: {size}");
        assert!(size as u64 <= config["vocab_size"].as_u64().expect("vocab_size"));
        for text in TEXTS {
            let enc = tok.encode(*text, false).expect("encode");
            assert!(
                enc.get_ids().len() < text.len(),
                "{name}: merges should shorten {text:?}"
            );
            let back = tok.decode(enc.get_ids(), false).expect("decode");
            assert_eq!(&back, text, "{name}");
        }
    }
}

#[test]
fn qwen_special_tokens_match_config_ids() {
    let (dir, tok, config) = write(&tiny_qwen3());
    let id = |s: &str| tok.token_to_id(s).expect(s);
    assert_eq!(
        config["eos_token_id"].as_u64(),
        Some(u64::from(id("<|im_end|>")))
    );
    assert_eq!(
        config["bos_token_id"].as_u64(),
        Some(u64::from(id("<|endoftext|>")))
    );
    let enc = tok
        .encode("<|im_start|>user\nhi<|im_end|><think>", false)
        .expect("encode");
    let ids = enc.get_ids();
    assert_eq!(ids[0], id("<|im_start|>"));
    assert!(ids.contains(&id("<|im_end|>")));
    assert_eq!(ids.last().copied(), Some(id("<think>")));

    let generation = read_json(&dir.path().join("generation_config.json"));
    let eos: Vec<u64> = generation["eos_token_id"]
        .as_array()
        .expect("eos list")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    assert_eq!(
        eos,
        vec![u64::from(id("<|im_end|>")), u64::from(id("<|endoftext|>"))]
    );
}

#[test]
fn llama_adds_begin_of_text_only_with_special_tokens() {
    let (dir, tok, config) = write(&tiny_llama());
    let bos = tok.token_to_id("<|begin_of_text|>").expect("bos");
    assert_eq!(config["bos_token_id"].as_u64(), Some(u64::from(bos)));
    let eot = tok.token_to_id("<|eot_id|>").expect("eot");
    let eos = config["eos_token_id"].as_array().expect("eos list");
    assert!(eos.iter().any(|v| v.as_u64() == Some(u64::from(eot))));
    assert_eq!(tok.encode("hi", true).expect("encode").get_ids()[0], bos);
    assert_ne!(tok.encode("hi", false).expect("encode").get_ids()[0], bos);

    let tc = read_json(&dir.path().join("tokenizer_config.json"));
    let template = tc["chat_template"].as_str().expect("template");
    assert!(template.contains("<|start_header_id|>") && template.contains("bos_token"));
}

/// Runs only where `scripts/fetch-qwen-vocab` has put `models/qwen.tiktoken`.
#[test]
fn real_qwen_vocabulary_gives_qwen_ids() {
    let ranks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/qwen.tiktoken");
    if !ranks.exists() {
        eprintln!(
            "skipped: {} missing (scripts/fetch-qwen-vocab)",
            ranks.display()
        );
        return;
    }
    let (_dir, tok, config) = write(&tiny_qwen3().with_qwen_vocab(&ranks));
    assert_eq!(config["vocab_size"], 151_936);
    assert_eq!(tok.get_vocab_size(true), 151_669);
    let ids = |s: &str| tok.encode(s, false).expect("encode").get_ids().to_vec();
    // Ids as Qwen2.5/Qwen3 checkpoints assign them.
    assert_eq!(ids("Hello world"), vec![9707, 1879]);
    assert_eq!(
        ids("<|im_start|>user\n你好<|im_end|>"),
        vec![151644, 872, 198, 108386, 151645]
    );
    assert_eq!(
        ids("<think>\n\n</think>\n\n"),
        vec![151667, 271, 151668, 271]
    );
}
