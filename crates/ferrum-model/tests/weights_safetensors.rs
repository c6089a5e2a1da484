//! safetensors reader: files written by the reference `safetensors` package
//! (`scripts/fixtures/weights_make_safetensors.py`), sharded indexes, `open_weights`, and files
//! that lie in one place each.

#[path = "fixtures/weights/builders.rs"]
mod builders;

use builders::{fixture, read_fixture, safetensors};
use ferrum_model::weights::{
    open_weights, FileBytes, SafetensorsFile, WeightError, WeightSource, MAX_HEADER_BYTES,
};
use ferrum_types::DType;

/// Checks one kind of error.
type Expect = fn(&WeightError) -> bool;

fn parse(bytes: Vec<u8>) -> Result<SafetensorsFile, WeightError> {
    SafetensorsFile::from_bytes(FileBytes::Owned(bytes), "test".into())
}

#[test]
fn reads_reference_file() {
    let st = SafetensorsFile::open(&fixture("tiny.safetensors")).expect("open");
    // position_ids (I64) is valid but not loadable, so it is not listed.
    assert_eq!(
        st.names(),
        ["empty", "model.embed_tokens.weight", "model.norm.weight"]
    );
    let emb = st.tensor("model.embed_tokens.weight").expect("tensor");
    assert_eq!((emb.dtype, emb.shape.clone()), (DType::F32, vec![2, 3]));
    assert!(
        matches!(emb.data, std::borrow::Cow::Borrowed(_)),
        "zero-copy"
    );
    assert_eq!(
        emb.to_f32_dense().expect("f32"),
        [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]
    );
    let norm = st.tensor("model.norm.weight").expect("tensor");
    assert_eq!(norm.dtype, DType::F16);
    assert_eq!(norm.to_f32_dense().expect("f32"), [0.5, -1.0, 2.0, 65504.0]);
    let empty = st.tensor("empty").expect("tensor");
    assert_eq!((empty.shape.clone(), empty.data.len()), (vec![0, 3], 0));
    assert_eq!(st.total_bytes(), 24 + 8);
    match st.tensor("position_ids") {
        Err(WeightError::UnknownDType { tensor, dtype }) => {
            assert_eq!((tensor.as_str(), dtype.as_str()), ("position_ids", "I64"))
        }
        other => panic!("{other:?}"),
    }
    match st.tensor("nope") {
        Err(WeightError::MissingTensor { name, .. }) => assert_eq!(name, "nope"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bf16_tensor() {
    let header = r#"{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#;
    let st = parse(safetensors(header, &[0x80, 0x3f, 0x00, 0xc0])).expect("parse");
    assert_eq!(st.tensor("w").unwrap().to_f32_dense().unwrap(), [1.0, -2.0]);
}

#[test]
fn sharded_index() {
    let src = open_weights(&fixture("sharded_st")).expect("open");
    assert_eq!(src.format(), "safetensors");
    assert_eq!(
        src.names(),
        [
            "lm_head.weight",
            "model.embed_tokens.weight",
            "model.norm.weight"
        ]
    );
    let lm = src.tensor("lm_head.weight").expect("tensor");
    assert_eq!(lm.to_f32_dense().unwrap(), [5.0, 6.0]);
    assert_eq!(src.info("model.norm.weight").unwrap().dtype, DType::F16);
    assert_eq!(src.total_bytes(), 16 + 8 + 4);
}

#[test]
fn open_weights_prefers_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_weights(dir.path()).err().expect("empty dir");
    let msg = err.to_string();
    for looked in [
        ".gguf",
        "model.safetensors.index.json",
        "model.safetensors",
        "pytorch_model.bin.index.json",
        "pytorch_model.bin",
    ] {
        assert!(msg.contains(looked), "{msg}");
    }
    // A lone .gguf is the last resort; any of the named files wins over it.
    std::fs::copy(fixture("tiny_v3.gguf"), dir.path().join("x.gguf")).unwrap();
    assert_eq!(open_weights(dir.path()).unwrap().format(), "gguf");
    // A single file wins over a .bin; the index wins over both.
    std::fs::copy(fixture("tiny_p2.bin"), dir.path().join("pytorch_model.bin")).unwrap();
    assert_eq!(open_weights(dir.path()).unwrap().format(), "pytorch");
    std::fs::copy(
        fixture("tiny.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let src = open_weights(dir.path()).unwrap();
    assert!(src.contains("model.embed_tokens.weight"));
    for f in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        std::fs::copy(fixture("sharded_st").join(f), dir.path().join(f)).unwrap();
    }
    std::fs::copy(
        fixture("sharded_st/model.safetensors.index.json"),
        dir.path().join("model.safetensors.index.json"),
    )
    .unwrap();
    assert!(open_weights(dir.path()).unwrap().contains("lm_head.weight"));
}

#[test]
fn index_cannot_escape_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(&index, r#"{"weight_map":{"w":"../model.safetensors"}}"#).unwrap();
    assert!(matches!(
        open_weights(dir.path()),
        Err(WeightError::BadHeader { .. })
    ));
}

#[test]
fn index_naming_an_absent_tensor() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("tiny.safetensors"),
        dir.path().join("a.safetensors"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        r#"{"weight_map":{"ghost.weight":"a.safetensors"}}"#,
    )
    .unwrap();
    match open_weights(dir.path()) {
        Err(WeightError::MissingTensor { name, in_file }) => {
            assert_eq!(name, "ghost.weight");
            assert!(in_file.is_some_and(|f| f.ends_with("a.safetensors")));
        }
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn every_truncation_is_a_typed_error() {
    let good = read_fixture("tiny.safetensors");
    for len in 0..good.len() {
        let err = parse(good[..len].to_vec()).err();
        assert!(
            matches!(
                err,
                Some(WeightError::Truncated { .. } | WeightError::OutOfBounds { .. })
            ),
            "len {len}: {err:?}"
        );
    }
}

#[test]
fn header_length_lies() {
    let mut bytes = read_fixture("tiny.safetensors");
    let len = bytes.len() as u64;
    bytes[..8].copy_from_slice(&len.to_le_bytes());
    assert!(matches!(
        parse(bytes.clone()),
        Err(WeightError::Truncated { .. })
    ));
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    match parse(bytes) {
        Err(WeightError::LimitExceeded { value, limit, .. }) => {
            assert_eq!((value, limit), (u64::MAX, MAX_HEADER_BYTES))
        }
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn offsets_out_of_range() {
    let header = r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    match parse(safetensors(header, &[0; 8])) {
        Err(WeightError::OutOfBounds {
            tensor, end, len, ..
        }) => assert_eq!((tensor.as_str(), end, len), ("w", 12, 8)),
        other => panic!("{:?}", other.err()),
    }
    let reversed = r#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}"#;
    assert!(matches!(
        parse(safetensors(reversed, &[0; 8])),
        Err(WeightError::OutOfBounds { .. })
    ));
}

#[test]
fn size_must_match_shape() {
    let header = r#"{"w":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}}"#;
    match parse(safetensors(header, &[0; 8])) {
        Err(WeightError::SizeMismatch { expected, got, .. }) => assert_eq!((expected, got), (6, 8)),
        other => panic!("{:?}", other.err()),
    }
    let huge = r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]}}"#;
    assert!(matches!(
        parse(safetensors(huge, &[0; 8])),
        Err(WeightError::BadShape { .. })
    ));
}

#[test]
fn overlapping_tensors() {
    let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                     "b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    assert!(matches!(
        parse(safetensors(header, &[0; 8])),
        Err(WeightError::Overlap { .. })
    ));
}

#[test]
fn malformed_headers() {
    let cases: &[(&str, Expect)] = &[
        ("[1,2]", |e| matches!(e, WeightError::BadMagic { .. })),
        ("{not json", |e| matches!(e, WeightError::BadHeader { .. })),
        (r#"{"w":{"dtype":"F32"}}"#, |e| {
            matches!(e, WeightError::BadHeader { .. })
        }),
        (
            r#"{"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,0]}}"#,
            |e| matches!(e, WeightError::UnknownDType { tensor, dtype } if tensor == "w" && dtype == "Q4"),
        ),
        (
            r#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#,
            |e| matches!(e, WeightError::BadHeader { .. }),
        ),
    ];
    for (header, ok) in cases {
        let err = parse(safetensors(header, &[])).err().expect(header);
        assert!(ok(&err), "{header}: {err:?}");
    }
}

#[test]
fn deep_json_nesting_is_an_error_not_a_stack_overflow() {
    let header = format!(
        r#"{{"__metadata__":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(matches!(
        parse(safetensors(&header, &[])),
        Err(WeightError::BadHeader { .. })
    ));
}
