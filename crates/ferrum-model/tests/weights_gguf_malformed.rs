//! GGUF files that lie in one place each (counts, lengths, offsets, shapes): every one must be a
//! typed error, never a panic or an allocation sized by the lie.

#[path = "fixtures/weights/builders.rs"]
mod builders;

use builders::{f32_bytes, gguf_str, read_fixture, Gguf};
use ferrum_model::weights::{FileBytes, GgufFile, WeightError};

fn parse(bytes: Vec<u8>) -> Result<GgufFile, WeightError> {
    GgufFile::from_bytes(FileBytes::Owned(bytes), "test".into())
}

fn err(g: &Gguf) -> WeightError {
    match parse(g.build()) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    }
}

/// A valid file with one F32 [2, 2] tensor and a string key.
fn valid() -> Gguf {
    Gguf::default()
        .kv_str("general.architecture", "llama")
        .tensor("w", &[2, 2], 0, &f32_bytes(&[1.0, 2.0, 3.0, 4.0]))
}

#[test]
fn the_valid_base_parses() {
    let f = parse(valid().build()).expect("valid");
    assert_eq!(f.tensors().len(), 1);
    assert_eq!(f.tensors()[0].shape(), [2, 2]);
}

#[test]
fn magic_and_version() {
    let mut bytes = valid().build();
    bytes[3] = b'X';
    assert!(matches!(parse(bytes), Err(WeightError::BadMagic { .. })));
    for version in [1u32, 4, 0x0300_0000] {
        let g = Gguf { version, ..valid() };
        assert!(
            matches!(err(&g), WeightError::UnsupportedVersion { version: v, .. } if v == u64::from(version))
        );
    }
    let g = Gguf {
        version: 2,
        ..valid()
    };
    assert!(parse(g.build()).is_ok(), "v2 shares the v3 layout");
}

#[test]
fn lying_tensor_count() {
    let g = Gguf {
        tensor_count: Some(u64::MAX),
        ..valid()
    };
    assert!(matches!(err(&g), WeightError::LimitExceeded { .. }));
    let g = Gguf {
        tensor_count: Some(1 << 20),
        ..valid()
    };
    assert!(matches!(err(&g), WeightError::Truncated { .. }));
    // One more than written: the next "info" is read from the padding and data.
    let g = Gguf {
        tensor_count: Some(2),
        ..valid()
    };
    let e = err(&g);
    assert!(
        matches!(
            e,
            WeightError::Truncated { .. }
                | WeightError::BadShape { .. }
                | WeightError::OutOfBounds { .. }
                | WeightError::Misaligned { .. }
                | WeightError::BadHeader { .. }
        ),
        "{e:?}"
    );
}

#[test]
fn lying_kv_count() {
    let g = Gguf {
        kv_count: Some(u64::MAX),
        ..valid()
    };
    assert!(matches!(err(&g), WeightError::LimitExceeded { .. }));
    let g = Gguf {
        kv_count: Some(1000),
        ..valid()
    };
    assert!(matches!(err(&g), WeightError::Truncated { .. }));
}

#[test]
fn lying_string_lengths() {
    let g = Gguf::default().kv_raw("k", 8, &u64::MAX.to_le_bytes());
    assert!(matches!(err(&g), WeightError::Truncated { .. }));
    let g = Gguf::default().kv_raw("k", 8, &(1u64 << 40).to_le_bytes());
    assert!(matches!(err(&g), WeightError::Truncated { .. }));
    // A key whose own length lies.
    let g = Gguf {
        kv: u64::MAX.to_le_bytes().to_vec(),
        n_kv: 1,
        ..Gguf::default()
    };
    assert!(matches!(err(&g), WeightError::Truncated { .. }));
    // A tensor name whose length lies.
    let mut g = valid();
    g.infos[..8].copy_from_slice(&(1u64 << 50).to_le_bytes());
    assert!(matches!(err(&g), WeightError::Truncated { .. }));
}

fn array_header(elem_type: u32, len: u64) -> Vec<u8> {
    [elem_type.to_le_bytes().as_slice(), &len.to_le_bytes()].concat()
}

#[test]
fn lying_array_lengths() {
    for elem_type in [0u32, 4, 6, 7, 8, 9, 10, 12] {
        let g = Gguf::default().kv_raw("a", 9, &array_header(elem_type, u64::MAX));
        assert!(
            matches!(err(&g), WeightError::LimitExceeded { .. }),
            "type {elem_type}"
        );
        let g = Gguf::default().kv_raw("a", 9, &array_header(elem_type, 1 << 23));
        assert!(
            matches!(err(&g), WeightError::Truncated { .. }),
            "type {elem_type}"
        );
    }
    // An array of strings whose last string lies.
    let mut value = array_header(8, 2);
    value.extend(gguf_str("ok"));
    value.extend(u64::MAX.to_le_bytes());
    let g = Gguf::default().kv_raw("a", 9, &value);
    assert!(matches!(err(&g), WeightError::Truncated { .. }));
}

#[test]
fn deeply_nested_arrays() {
    let mut value = Vec::new();
    for _ in 0..10_000 {
        value.extend(array_header(9, 1));
    }
    let g = Gguf::default().kv_raw("deep", 9, &value);
    assert!(matches!(err(&g), WeightError::LimitExceeded { .. }));
}

#[test]
fn bad_values() {
    let g = Gguf::default().kv_raw("k", 13, &[0; 8]);
    assert!(matches!(err(&g), WeightError::BadHeader { .. }));
    let g = Gguf::default().kv_raw("b", 7, &[2]);
    assert!(matches!(err(&g), WeightError::BadHeader { .. }));
    let g = Gguf::default().kv_u32("k", 1).kv_u32("k", 2);
    assert!(matches!(err(&g), WeightError::BadHeader { .. }));
    for alignment in [0u32, 3, 1 << 30] {
        let g = valid().kv_u32("general.alignment", alignment);
        assert!(
            matches!(err(&g), WeightError::BadHeader { .. }),
            "{alignment}"
        );
    }
    let g = valid().kv_str("general.alignment", "32");
    assert!(matches!(err(&g), WeightError::MetadataType { .. }));
}

#[test]
fn lying_tensor_offsets() {
    let g = valid().tensor_at("far", &[4], 0, 1 << 40);
    match err(&g) {
        WeightError::OutOfBounds { tensor, .. } => assert_eq!(tensor, "far"),
        other => panic!("{other:?}"),
    }
    let g = valid().tensor_at("wrap", &[4], 0, u64::MAX - 31);
    assert!(matches!(err(&g), WeightError::OutOfBounds { .. }));
    let g = valid().tensor_at("odd", &[1], 0, 4);
    assert!(matches!(
        err(&g),
        WeightError::Misaligned {
            offset: 4,
            alignment: 32,
            ..
        }
    ));
    let g = valid().tensor_at("alias", &[2], 0, 0);
    assert!(matches!(err(&g), WeightError::Overlap { .. }));
    // The data section itself is cut short.
    let mut bytes = valid().build();
    bytes.truncate(bytes.len() - 1);
    assert!(matches!(parse(bytes), Err(WeightError::OutOfBounds { .. })));
}

#[test]
fn lying_shapes() {
    let g = valid().tensor_at("rank5", &[1, 1, 1, 1, 1], 0, 0);
    assert!(matches!(err(&g), WeightError::BadShape { .. }));
    let g = valid().tensor_at("huge", &[u64::MAX, 2], 0, 0);
    assert!(matches!(err(&g), WeightError::BadShape { .. }));
    // Q8_0 rows must be whole blocks of 32.
    let g = valid().tensor_at("partial", &[33, 2], 8, 0);
    assert!(matches!(err(&g), WeightError::BadShape { .. }));
    let g = valid().tensor_at("w", &[1], 0, 0);
    assert!(
        matches!(err(&g), WeightError::BadHeader { .. }),
        "duplicate name"
    );
}

#[test]
fn unknown_tensor_types_open_but_do_not_load() {
    let g = valid().tensor_at("iq", &[256], 16, 1 << 40);
    let f = parse(g.build()).expect("an unloadable tensor does not fail the file");
    let t = &f.tensors()[1];
    assert_eq!((t.dtype, t.ggml_type), (None, 16));
    match f.tensor_data(t) {
        Err(WeightError::UnknownDType { tensor, dtype }) => {
            assert_eq!((tensor.as_str(), dtype.as_str()), ("iq", "IQ2_XXS"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_truncation_is_a_typed_error() {
    let good = read_fixture("tiny_v3.gguf");
    // Cutting only into the data of a tensor type we do not load (whose size we cannot know)
    // is not detected; every earlier cut is.
    let full = parse(good.clone()).expect("valid");
    let loadable_end = full
        .tensors()
        .iter()
        .filter(|t| t.dtype.is_some())
        .map(|t| full.data_start() + t.offset + t.byte_len)
        .max()
        .expect("tensors") as usize;
    assert!(loadable_end < good.len());
    for len in 0..loadable_end {
        let e = parse(good[..len].to_vec()).err();
        assert!(
            matches!(
                e,
                Some(
                    WeightError::Truncated { .. }
                        | WeightError::BadMagic { .. }
                        | WeightError::OutOfBounds { .. }
                )
            ),
            "len {len}: {e:?}"
        );
    }
}
