//! PyTorch `.bin` reader: torch.save-format archives written by
//! `scripts/fixtures/weights_make_bin.py` (Python's own pickle and zipfile), hostile pickles that
//! must be refused without running anything, and hand-assembled pickles that break one rule each.

#[path = "fixtures/weights/builders.rs"]
mod builders;

use std::collections::BTreeMap;

use builders::{fixture, read_fixture, tensor_pickle, torch_zip, unicode};
use ferrum_model::weights::{open_weights, FileBytes, PytorchFile, WeightError, WeightSource};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    tensors: BTreeMap<String, ExpectedTensor>,
    unsupported: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ExpectedTensor {
    dtype: String,
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// Checks one kind of error.
type Expect = fn(&WeightError) -> bool;

fn parse(bytes: Vec<u8>) -> Result<PytorchFile, WeightError> {
    PytorchFile::from_bytes(FileBytes::Owned(bytes), "test".into())
}

#[test]
fn reads_torch_save_layouts() {
    let expected: Expected =
        serde_json::from_slice(&read_fixture("tiny_bin.expected.json")).expect("json");
    // Protocol 2 (what torch.save writes) and protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL, a
    // folder other than "archive").
    for file in ["tiny_p2.bin", "tiny_p4.bin"] {
        let bin = PytorchFile::open(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let names: Vec<_> = expected.tensors.keys().cloned().collect();
        assert_eq!(bin.names(), names, "{file}");
        for (name, want) in &expected.tensors {
            let t = bin.tensor(name).expect(name);
            assert_eq!(t.dtype.name(), want.dtype, "{file} {name}");
            assert_eq!(t.shape, want.shape, "{file} {name}");
            assert_eq!(t.to_f32_dense().expect(name), want.values, "{file} {name}");
        }
        // Contiguous tensors are slices of the map; the transposed one is copied.
        let a = bin.tensor("b.weight").unwrap();
        assert!(matches!(a.data, std::borrow::Cow::Borrowed(_)));
        let t = bin.tensor("t.weight").unwrap();
        assert!(matches!(t.data, std::borrow::Cow::Owned(_)));
        for (name, class) in &expected.unsupported {
            match bin.tensor(name) {
                Err(WeightError::UnknownDType { tensor, dtype }) => {
                    assert_eq!((&tensor, &dtype), (name, class))
                }
                other => panic!("{file} {name}: {other:?}"),
            }
        }
        assert_eq!(bin.total_bytes(), 16 + 24 + 8 + 12 + 24);
    }
}

#[test]
fn sharded_bin_index() {
    let src = open_weights(&fixture("sharded_bin")).expect("open");
    assert_eq!(src.format(), "pytorch");
    assert_eq!(src.names(), ["lm_head.weight", "model.embed_tokens.weight"]);
    let emb = src.tensor("model.embed_tokens.weight").unwrap();
    assert_eq!(emb.shape, [2, 2]);
    assert_eq!(emb.to_f32_dense().unwrap(), [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn refuses_code_execution() {
    let marker = std::path::Path::new("/tmp/ferrum-pwned");
    let _ = std::fs::remove_file(marker);
    match PytorchFile::open(&fixture("evil_os_system.bin")) {
        Err(WeightError::PickleGlobal { module, name }) => {
            assert_eq!((module.as_str(), name.as_str()), ("posix", "system"))
        }
        other => panic!("{:?}", other.err()),
    }
    match PytorchFile::open(&fixture("evil_exec_p4.bin")) {
        Err(WeightError::PickleGlobal { module, name }) => {
            assert_eq!((module.as_str(), name.as_str()), ("builtins", "exec"))
        }
        other => panic!("{:?}", other.err()),
    }
    match PytorchFile::open(&fixture("evil_inst_opcode.bin")) {
        Err(WeightError::PickleOpcode { name, opcode, .. }) => {
            assert_eq!((name, opcode), ("INST", b'i'))
        }
        other => panic!("{:?}", other.err()),
    }
    assert!(!marker.exists(), "a pickle ran code");
}

#[test]
fn refuses_compressed_entries_and_bad_views() {
    match PytorchFile::open(&fixture("deflated.bin")) {
        Err(WeightError::CompressedEntry { entry, method }) => {
            assert_eq!((entry.as_str(), method), ("archive/data.pkl", 8))
        }
        other => panic!("{:?}", other.err()),
    }
    assert!(matches!(
        PytorchFile::open(&fixture("view_out_of_bounds.bin")),
        Err(WeightError::OutOfBounds { tensor, .. }) if tensor == "w"
    ));
}

#[test]
fn hand_built_archive_round_trips() {
    let storage = builders::f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let pkl = tensor_pickle("w", 6, 2, &[2, 2], &[2, 1]);
    let bin = parse(torch_zip(&pkl, &storage)).expect("parse");
    assert_eq!(
        bin.tensor("w").unwrap().to_f32_dense().unwrap(),
        [3.0, 4.0, 5.0, 6.0]
    );
    // Ranks are capped, so a memoized giant size tuple cannot be re-expanded per tensor.
    let pkl = tensor_pickle("w", 6, 0, &[1; 65], &[1; 65]);
    assert!(matches!(
        parse(torch_zip(&pkl, &storage)),
        Err(WeightError::Pickle { .. })
    ));
}

#[test]
fn views_outside_their_storage() {
    let storage = builders::f32_bytes(&[0.0; 6]);
    let cases: &[(&str, Vec<u8>)] = &[
        ("offset past the end", tensor_pickle("w", 6, 5, &[2], &[1])),
        (
            "stride past the end",
            tensor_pickle("w", 6, 0, &[2, 2], &[5, 1]),
        ),
        (
            "storage bigger than its bytes",
            tensor_pickle("w", 7, 0, &[1], &[1]),
        ),
    ];
    for (what, pkl) in cases {
        let err = parse(torch_zip(pkl, &storage)).err();
        assert!(
            matches!(err, Some(WeightError::OutOfBounds { .. })),
            "{what}: {err:?}"
        );
    }
    // A broadcast (stride 0) view with more elements than its storage is refused, not copied.
    let err = parse(torch_zip(
        &tensor_pickle("w", 6, 0, &[200, 200], &[0, 0]),
        &storage,
    ))
    .err();
    assert!(matches!(err, Some(WeightError::BadShape { .. })), "{err:?}");
}

/// Wraps opcodes in PROTO 2 … STOP and runs them as a data.pkl.
fn run_pickle(body: &[u8]) -> Option<WeightError> {
    let mut p = vec![0x80, 2];
    p.extend_from_slice(body);
    p.push(b'.');
    parse(torch_zip(&p, &[])).err()
}

#[test]
fn malformed_pickles() {
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("NEWOBJ", vec![b')', 0x81], |e| {
            matches!(e, WeightError::PickleOpcode { name: "NEWOBJ", .. })
        }),
        ("BINBYTES", vec![b'B', 0, 0, 0, 0], |e| {
            matches!(
                e,
                WeightError::PickleOpcode {
                    name: "BINBYTES",
                    ..
                }
            )
        }),
        ("unknown byte", vec![0xff], |e| {
            matches!(
                e,
                WeightError::PickleOpcode {
                    opcode: 0xff,
                    name: "unknown",
                    ..
                }
            )
        }),
        (
            "torch global outside the list",
            b"ctorch\nload\n".to_vec(),
            |e| matches!(e, WeightError::PickleGlobal { module, name } if module == "torch" && name == "load"),
        ),
        ("stack underflow", vec![b'R'], |e| {
            matches!(e, WeightError::Pickle { .. })
        }),
        ("unset memo", vec![b'h', 7], |e| {
            matches!(e, WeightError::Pickle { .. })
        }),
        ("9-byte LONG1", [&[0x8a, 9][..], &[0; 9]].concat(), |e| {
            matches!(e, WeightError::Pickle { .. })
        }),
        (
            "string longer than the pickle",
            vec![b'X', 0xff, 0xff, 0xff, 0x7f],
            |e| matches!(e, WeightError::Truncated { .. }),
        ),
        ("invalid UTF-8", vec![b'X', 1, 0, 0, 0, 0xff], |e| {
            matches!(e, WeightError::Pickle { .. })
        }),
        (
            "SETITEMS on a list",
            vec![b']', b'(', b'N', b'N', b'u'],
            |e| matches!(e, WeightError::Pickle { .. }),
        ),
        (
            "REDUCE of a string",
            [unicode("f"), vec![b')', b'R']].concat(),
            |e| matches!(e, WeightError::Pickle { .. }),
        ),
        (
            "storage class called",
            b"ctorch\nFloatStorage\n)R".to_vec(),
            |e| matches!(e, WeightError::Pickle { .. }),
        ),
        ("root is not a dict", vec![b'N'], |e| {
            matches!(e, WeightError::BadHeader { .. })
        }),
        ("future protocol", vec![0x80, 6], |e| {
            matches!(e, WeightError::UnsupportedVersion { version: 6, .. })
        }),
    ];
    for (what, body, ok) in cases {
        let err = run_pickle(&body).unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(ok(&err), "{what}: {err:?}");
    }
    // No STOP at all: runs off the end.
    let err = parse(torch_zip(&[0x80, 2, b'}'], &[])).err();
    assert!(
        matches!(err, Some(WeightError::Truncated { .. })),
        "{err:?}"
    );
}

#[test]
fn not_a_torch_zip() {
    assert!(matches!(
        parse(vec![0x80, 2, b'}', b'.']),
        Err(WeightError::BadMagic { .. })
    ));
    assert!(matches!(
        parse(b"PK".to_vec()),
        Err(WeightError::BadMagic { .. })
    ));
    let no_pickle = builders::zip_stored(&[("archive/version", b"3\n")]);
    assert!(matches!(
        parse(no_pickle),
        Err(WeightError::BadMagic { .. })
    ));
    let big_endian = builders::zip_stored(&[
        ("archive/data.pkl", b"\x80\x02}."),
        ("archive/byteorder", b"big"),
    ]);
    assert!(matches!(
        parse(big_endian),
        Err(WeightError::BadHeader { .. })
    ));
}

#[test]
fn every_truncation_is_a_typed_error() {
    let good = read_fixture("tiny_p2.bin");
    for len in 0..good.len() {
        assert!(parse(good[..len].to_vec()).is_err(), "len {len} accepted");
    }
}
