//! GGUF reader, checked against the reference `gguf` Python package: `tiny_*.gguf` were written
//! by its GGUFWriter and `*.expected.json` record what its GGUFReader reads back
//! (`scripts/fixtures/weights_make_gguf.py`), including for the default model.

#[path = "fixtures/weights/builders.rs"]
mod builders;

use std::collections::BTreeMap;
use std::path::PathBuf;

use builders::{fixture, read_fixture};
use ferrum_model::weights::gguf::{ggml_type_name, GgufArray, GgufValue};
use ferrum_model::weights::{
    open_weights, GgufFile, GgufLayout, GgufWeights, WeightError, WeightSource,
};
use ferrum_types::DType;
use serde::Deserialize;
use serde_json::{json, Value as Json};

#[derive(Deserialize)]
struct Described {
    version: u32,
    tensor_count: usize,
    kv_count: usize,
    alignment: u64,
    data_start: u64,
    metadata: BTreeMap<String, Json>,
    tensors: Vec<ExpectedTensor>,
    vocab: Option<Json>,
}

#[derive(Deserialize)]
struct ExpectedTensor {
    name: String,
    dims: Vec<u64>,
    #[serde(rename = "type")]
    type_name: String,
    type_id: u32,
    offset: u64,
    n_bytes: u64,
    byte_sum: Option<u64>,
    head_hex: Option<String>,
}

fn to_json(v: &GgufValue) -> Json {
    match v {
        GgufValue::U8(x) => json!(x),
        GgufValue::I8(x) => json!(x),
        GgufValue::U16(x) => json!(x),
        GgufValue::I16(x) => json!(x),
        GgufValue::U32(x) => json!(x),
        GgufValue::I32(x) => json!(x),
        GgufValue::U64(x) => json!(x),
        GgufValue::I64(x) => json!(x),
        GgufValue::F32(x) => json!(f64::from(*x)),
        GgufValue::F64(x) => json!(x),
        GgufValue::Bool(x) => json!(x),
        GgufValue::String(x) => json!(x),
        GgufValue::Array(a) => array_json(a),
    }
}

fn array_json(a: &GgufArray) -> Json {
    match a {
        GgufArray::U8(v) => json!(v),
        GgufArray::I8(v) => json!(v),
        GgufArray::U16(v) => json!(v),
        GgufArray::I16(v) => json!(v),
        GgufArray::U32(v) => json!(v),
        GgufArray::I32(v) => json!(v),
        GgufArray::U64(v) => json!(v),
        GgufArray::I64(v) => json!(v),
        GgufArray::F32(v) => json!(v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()),
        GgufArray::F64(v) => json!(v),
        GgufArray::Bool(v) => json!(v),
        GgufArray::String(v) => json!(v),
        GgufArray::Array(v) => Json::Array(v.iter().map(array_json).collect()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares a file with what GGUFReader saw: header, every tensor, the listed metadata.
fn check_against(file: &GgufFile, want: &Described) {
    assert_eq!(file.version(), want.version);
    assert_eq!(file.tensors().len(), want.tensor_count);
    assert_eq!(file.metadata().len(), want.kv_count);
    assert_eq!(file.alignment(), want.alignment);
    assert_eq!(file.data_start(), want.data_start);
    for (t, w) in file.tensors().iter().zip(&want.tensors) {
        assert_eq!(t.name, w.name);
        assert_eq!(t.dims, w.dims, "{}", w.name);
        assert_eq!(t.ggml_type, w.type_id, "{}", w.name);
        assert_eq!(ggml_type_name(t.ggml_type), w.type_name, "{}", w.name);
        assert_eq!(t.offset, w.offset, "{}", w.name);
        if t.dtype.is_none() {
            continue;
        }
        assert_eq!(t.byte_len, w.n_bytes, "{}", w.name);
        let data = file.tensor_data(t).expect("data");
        if let Some(sum) = w.byte_sum {
            assert_eq!(
                data.iter().map(|&b| u64::from(b)).sum::<u64>(),
                sum,
                "{}",
                w.name
            );
        }
        if let Some(head) = &w.head_hex {
            assert_eq!(&hex(&data[..data.len().min(16)]), head, "{}", w.name);
        }
    }
    for (key, value) in &want.metadata {
        if key == "test.nested" {
            continue; // GGUFReader flattens nested arrays; checked by hand below.
        }
        let got = file
            .metadata()
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(&to_json(got), value, "{key}");
    }
}

fn load_expected(name: &str) -> Json {
    serde_json::from_slice(&read_fixture(name)).expect("expected json")
}

#[test]
fn matches_reference_reader_on_tiny_files() {
    let expected = load_expected("tiny_gguf.expected.json");
    for (file, key) in [
        ("tiny_v3.gguf", "v3"),
        ("tiny_v2_align64.gguf", "v2_align64"),
    ] {
        let want: Described = serde_json::from_value(expected[key].clone()).expect("shape");
        let gguf = GgufFile::open(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        check_against(&gguf, &want);
        let nested = gguf.metadata().get("test.nested").expect("nested");
        assert_eq!(to_json(nested), json!([[1, 2], [3]]));
    }
}

#[test]
fn typed_metadata_getters() {
    let gguf = GgufFile::open(&fixture("tiny_v3.gguf")).expect("open");
    let md = gguf.metadata();
    assert_eq!(md.architecture().unwrap(), "llama");
    assert_eq!(md.get_u32("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(md.get_u32("test.u8").unwrap(), 200);
    assert_eq!(md.get_usize("llama.block_count").unwrap(), 1);
    assert_eq!(md.get_i64("test.i8").unwrap(), -100);
    assert_eq!(md.get_u64("test.u64").unwrap(), (1 << 63) + 5);
    assert_eq!(md.get_f32("test.f32").unwrap(), 0.25);
    assert_eq!(md.get_f64("test.f64").unwrap(), -1.5e300);
    assert!(md.get_bool("test.bool").unwrap());
    assert_eq!(md.get_str("test.string").unwrap(), "héllo");
    assert_eq!(md.get_str_array("test.str_array").unwrap(), ["a", "bc", ""]);
    assert_eq!(md.get_f32_array("test.f32_array").unwrap(), [1.5, -2.0]);
    assert_eq!(md.get_i32_array("test.i32_array").unwrap(), [1, -2, 3]);
    assert_eq!(md.opt_u32("no.such.key").unwrap(), None);
    match md.get_u32("no.such.key") {
        Err(WeightError::MissingMetadata { key }) => assert_eq!(key, "no.such.key"),
        other => panic!("{other:?}"),
    }
    for (key, expected) in [
        ("test.i8", "u32"),
        ("test.u64", "u32"),
        ("test.string", "u32"),
    ] {
        match md.get_u32(key) {
            Err(WeightError::MetadataType {
                key: k,
                expected: e,
                ..
            }) => {
                assert_eq!(k, key);
                assert!(e.contains(expected), "{e}");
            }
            other => panic!("{key}: {other:?}"),
        }
    }
    assert!(matches!(
        md.get_str_array("test.i32_array"),
        Err(WeightError::MetadataType { .. })
    ));
}

/// Row `r` of a `[rows, 8]` tensor whose stored row `r` holds `8r .. 8r+8`.
fn first_of_rows(values: &[f32]) -> Vec<f32> {
    values.chunks(8).map(|r| r[0] / 8.0).collect()
}

#[test]
fn hugging_face_names_shapes_and_layout() {
    let src = open_weights(&fixture("tiny_v3.gguf")).expect("open");
    assert_eq!(src.format(), "gguf");
    assert!(src.gguf_metadata().is_some());
    assert_eq!(
        src.names(),
        [
            "model.embed_tokens.weight",
            "model.layers.0.input_layernorm.weight",
            "model.layers.0.mlp.down_proj.weight",
            "model.layers.0.mlp.up_proj.weight",
            "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.self_attn.q_proj.weight",
            "model.norm.weight",
        ]
    );
    let emb = src.tensor("model.embed_tokens.weight").unwrap();
    assert_eq!((emb.dtype, emb.shape.clone()), (DType::F32, vec![4, 8]));
    assert_eq!(emb.to_f32_dense().unwrap()[..3], [0.0, 0.25, 0.5]);
    let norm = src.tensor("model.layers.0.input_layernorm.weight").unwrap();
    assert_eq!(norm.to_f32_dense().unwrap(), [1.0, -2.0, 0.5, 3.0]);
    let down = src.tensor("model.layers.0.mlp.down_proj.weight").unwrap();
    assert_eq!(
        (down.dtype, down.shape.clone(), down.data.len()),
        (DType::Q8_0, vec![2, 32], 68)
    );
    let up = src.info("model.layers.0.mlp.up_proj.weight").unwrap();
    assert_eq!((up.dtype, up.shape), (DType::Q4K, vec![1, 256]));
    match src.tensor("model.layers.0.mlp.gate_proj.weight") {
        Err(WeightError::UnknownDType { tensor, dtype }) => {
            assert_eq!(tensor, "model.layers.0.mlp.gate_proj.weight");
            assert_eq!(dtype, "Q2_K");
        }
        other => panic!("{other:?}"),
    }
    // llama Q (2 heads of 4 rows) and K (1 head): `open_weights` hands out the stored order
    // (the model rotates adjacent pairs); the Hugging Face layout puts rows (2j + half) back.
    let q = src
        .tensor("model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    assert_eq!(
        first_of_rows(&q.to_f32_dense().unwrap()),
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    );
    let hf = GgufFile::open(&fixture("tiny_v3.gguf")).unwrap();
    let hf = GgufWeights::new(hf, GgufLayout::HuggingFace).unwrap();
    let q = hf.tensor("model.layers.0.self_attn.q_proj.weight").unwrap();
    assert_eq!(
        first_of_rows(&q.to_f32_dense().unwrap()),
        [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]
    );
    let k = hf.tensor("model.layers.0.self_attn.k_proj.weight").unwrap();
    assert_eq!(
        first_of_rows(&k.to_f32_dense().unwrap()),
        [0.0, 2.0, 1.0, 3.0]
    );
}

fn default_model() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipping: {} missing (scripts/fetch-default-model)",
            path.display()
        );
        None
    }
}

#[test]
fn matches_reference_reader_on_default_model() {
    let Some(path) = default_model() else { return };
    let want: Described =
        serde_json::from_value(load_expected("smollm2.expected.json")).expect("shape");
    let gguf = GgufFile::open(&path).expect("open");
    check_against(&gguf, &want);

    let md = gguf.metadata();
    let vocab = want.vocab.as_ref().expect("vocab");
    let tokens = md.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(json!(tokens.len()), vocab["len"]);
    assert_eq!(json!(tokens[..5]), vocab["first"]);
    assert_eq!(json!(tokens[tokens.len() - 3..]), vocab["last"]);
    let merges = md.get_str_array("tokenizer.ggml.merges").unwrap();
    assert_eq!(json!(merges.len()), vocab["merges_len"]);
    assert_eq!(json!(merges[..3]), vocab["merges_first"]);
    let types = md.get_i32_array("tokenizer.ggml.token_type").unwrap();
    assert_eq!(json!(types[..5]), vocab["token_type_first"]);
    let template = md.get_str("tokenizer.chat_template").unwrap();
    assert_eq!(json!(template.chars().count()), vocab["chat_template_len"]);

    // Through the WeightSource view: HF names, reversed shapes, every tensor readable.
    let src = GgufWeights::new(gguf, GgufLayout::HuggingFace).expect("weights");
    assert_eq!(src.names().len(), want.tensor_count);
    let emb = src.info("model.embed_tokens.weight").unwrap();
    assert_eq!((emb.dtype, emb.shape), (DType::Q8_0, vec![49152, 576]));
    let q = src.info("model.layers.0.self_attn.q_proj.weight").unwrap();
    assert_eq!((q.dtype, q.shape), (DType::Q4_1, vec![576, 576]));
    let k = src.info("model.layers.29.self_attn.k_proj.weight").unwrap();
    assert_eq!(k.shape, [192, 576]);
    for name in src.names() {
        let t = src.tensor(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
        t.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // Un-permuting Q moves whole rows: same bytes, another order.
    let q = src
        .tensor("model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    let raw = src
        .file()
        .tensors()
        .iter()
        .find(|t| t.name == "blk.0.attn_q.weight")
        .unwrap();
    let raw = src.file().tensor_data(raw).unwrap();
    let sum = |b: &[u8]| b.iter().map(|&x| u64::from(x)).sum::<u64>();
    assert_eq!(sum(&q.data), sum(raw));
    assert_ne!(&q.data[..], raw);
}
