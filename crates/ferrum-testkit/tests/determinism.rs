//! The generator is deterministic, and the committed logit fixtures belong to it.
//!
//! If a test here fails after a change to the generator, the change altered the weights that
//! `fixtures/reference_logits.json` was computed from: regenerate the fixture with
//! `python3 scripts/reference/make_logit_fixtures.py` and update the pinned hashes, or undo it.

use std::collections::BTreeMap;
use std::path::Path;

use ferrum_testkit::{
    fnv1a64_file, preset, tiny_llama, tiny_qwen2, tiny_qwen3, write_test_model, DType,
};

const FIXTURE: &str = include_str!("../fixtures/reference_logits.json");

fn hash_hex(path: &Path) -> String {
    format!("{:016x}", fnv1a64_file(path).expect("hash"))
}

#[test]
fn fixture_cases_hash_to_what_the_generator_writes_now() {
    let fixture: serde_json::Value = serde_json::from_str(FIXTURE).expect("fixture parses");
    let cases = fixture["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 8);
    for case in cases {
        let name = case["preset"].as_str().expect("preset");
        let seed = case["seed"].as_u64().expect("seed");
        let spec = preset(name)
            .expect("known preset")
            .with_seed(seed)
            .with_dtype(DType::F32);
        let dir = tempfile::tempdir().expect("tempdir");
        write_test_model(dir.path(), &spec).expect("write");
        assert_eq!(
            hash_hex(&dir.path().join("model.safetensors")),
            case["safetensors_fnv1a64"].as_str().expect("hash"),
            "{name} seed {seed}: weights differ from the fixture's; regenerate it (see module doc)"
        );
    }
}

#[test]
fn fixture_rows_have_one_logit_per_vocab_entry() {
    let fixture: serde_json::Value = serde_json::from_str(FIXTURE).expect("fixture parses");
    for case in fixture["cases"].as_array().expect("cases") {
        let vocab = case["vocab_size"].as_u64().expect("vocab") as usize;
        for prompt in case["prompts"].as_array().expect("prompts") {
            let rows = prompt["logits"].as_array().expect("logits");
            let positions = prompt["positions"].as_array().expect("positions");
            assert_eq!(rows.len(), positions.len());
            assert!(rows
                .iter()
                .all(|r| r.as_array().map(Vec::len) == Some(vocab)));
        }
    }
}

#[test]
fn other_dtypes_and_shards_are_pinned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bf16 = dir.path().join("bf16");
    write_test_model(
        &bf16,
        &tiny_qwen3()
            .with_dtype(DType::BF16)
            .with_seed(5)
            .with_shards(3),
    )
    .expect("write bf16");
    let f16 = dir.path().join("f16");
    write_test_model(&f16, &tiny_llama().with_dtype(DType::F16).with_seed(3)).expect("write f16");
    let got = [
        hash_hex(&bf16.join("model-00001-of-00003.safetensors")),
        hash_hex(&bf16.join("model-00002-of-00003.safetensors")),
        hash_hex(&bf16.join("model-00003-of-00003.safetensors")),
        hash_hex(&f16.join("model.safetensors")),
    ];
    assert_eq!(got, PINNED, "bf16 shards / f16 weights changed");
}

/// FNV-1a 64 of tiny_qwen3 bf16 seed 5 in 3 shards, then tiny_llama f16 seed 3.
const PINNED: [&str; 4] = [
    "5368117771c39cdc",
    "dc0772ff92f5f020",
    "0984870eda360a79",
    "23a58d644b082316",
];

#[test]
fn writing_twice_gives_identical_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = tiny_qwen2().with_dtype(DType::BF16).with_shards(2);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    write_test_model(&a, &spec).expect("write a");
    write_test_model(&b, &spec).expect("write b");
    let mut names: Vec<_> = std::fs::read_dir(&a)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), 7, "{names:?}");
    for name in names {
        let left = std::fs::read(a.join(&name)).expect("read");
        let right = std::fs::read(b.join(&name)).expect("read");
        assert!(left == right, "{name:?} differs between two writes");
    }
}

/// Tensor name → (dtype, shape, raw bytes), from every safetensors file in `dir`.
fn read_tensors(dir: &Path) -> BTreeMap<String, (String, Vec<u64>, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes[8..8 + n]).expect("header");
        for (name, info) in header {
            if name == "__metadata__" {
                continue;
            }
            let offs: Vec<usize> = info["data_offsets"]
                .as_array()
                .expect("offsets")
                .iter()
                .map(|v| v.as_u64().expect("offset") as usize)
                .collect();
            let shape = info["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|v| v.as_u64().expect("dim"))
                .collect();
            let data = bytes[8 + n + offs[0]..8 + n + offs[1]].to_vec();
            let dtype = info["dtype"].as_str().expect("dtype").to_string();
            assert!(
                out.insert(name, (dtype, shape, data)).is_none(),
                "duplicate tensor"
            );
        }
    }
    out
}

#[test]
fn shards_hold_the_same_tensors_as_one_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, three) = (dir.path().join("one"), dir.path().join("three"));
    write_test_model(&one, &tiny_qwen2()).expect("write one");
    write_test_model(&three, &tiny_qwen2().with_shards(3)).expect("write three");
    let single = read_tensors(&one);
    let sharded = read_tensors(&three);
    assert_eq!(single, sharded);

    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(three.join("model.safetensors.index.json")).expect("index"),
    )
    .expect("index parses");
    let map = index["weight_map"].as_object().expect("weight_map");
    assert_eq!(map.len(), single.len());
    let total: usize = single.values().map(|(_, _, d)| d.len()).sum();
    assert_eq!(index["metadata"]["total_size"].as_u64(), Some(total as u64));
    for (name, file) in map {
        let file = file.as_str().expect("file name");
        assert!(three.join(file).exists(), "{name} -> {file}");
    }
}
