//! Mutation tests: random byte flips and truncations of small valid checkpoints never panic,
//! and whatever still opens hands out tensors whose byte length matches their dtype and shape.

#[path = "fixtures/weights/builders.rs"]
mod builders;

use builders::{f32_bytes, read_fixture, tensor_pickle, torch_zip};
use ferrum_model::weights::{
    FileBytes, GgufFile, GgufLayout, GgufWeights, PytorchFile, SafetensorsFile, WeightSource,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// Reads every listed tensor; a listed tensor must either load with a consistent size or fail
/// with a typed error (both are fine: the point is that nothing panics).
fn exercise(src: &dyn WeightSource) {
    let _ = src.total_bytes();
    for name in src.names() {
        let info = src.info(&name).expect("listed names have info");
        if let Ok(t) = src.tensor(&name) {
            assert_eq!(t.shape, info.shape);
            assert!(t.validate().is_ok(), "{name}: inconsistent size");
        }
    }
}

fn mutate(mut bytes: Vec<u8>, flips: &[(Index, u8)], cut: Option<Index>) -> Vec<u8> {
    if !bytes.is_empty() {
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
    }
    if let Some(cut) = cut {
        let len = cut.index(bytes.len() + 1);
        bytes.truncate(len);
    }
    bytes
}

fn open_gguf(bytes: Vec<u8>) {
    if let Ok(f) = GgufFile::from_bytes(FileBytes::Owned(bytes), "m".into()) {
        for t in f.tensors() {
            let _ = f.tensor_data(t);
        }
        if let Ok(w) = GgufWeights::new(f, GgufLayout::HuggingFace) {
            exercise(&w);
        }
    }
}

fn open_safetensors(bytes: Vec<u8>) {
    if let Ok(f) = SafetensorsFile::from_bytes(FileBytes::Owned(bytes), "m".into()) {
        exercise(&f);
    }
}

fn open_pytorch(bytes: Vec<u8>) {
    if let Ok(f) = PytorchFile::from_bytes(FileBytes::Owned(bytes), "m".into()) {
        exercise(&f);
    }
}

fn flips() -> impl Strategy<Value = Vec<(Index, u8)>> {
    prop::collection::vec((any::<Index>(), any::<u8>()), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn gguf_mutations(flips in flips(), cut in prop::option::of(any::<Index>())) {
        open_gguf(mutate(read_fixture("tiny_v3.gguf"), &flips, cut));
    }

    #[test]
    fn safetensors_mutations(flips in flips(), cut in prop::option::of(any::<Index>())) {
        open_safetensors(mutate(read_fixture("tiny.safetensors"), &flips, cut));
    }

    #[test]
    fn pytorch_mutations(flips in flips(), cut in prop::option::of(any::<Index>())) {
        open_pytorch(mutate(read_fixture("tiny_p2.bin"), &flips, cut));
    }

    /// Mutates the pickle inside an intact zip, so the mutations reach the unpickler.
    #[test]
    fn pickle_mutations(flips in flips(), cut in prop::option::of(any::<Index>())) {
        let pickle = tensor_pickle("w", 6, 0, &[2, 3], &[3, 1]);
        let storage = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        open_pytorch(torch_zip(&mutate(pickle, &flips, cut), &storage));
    }

    /// Arbitrary bytes, not derived from a valid file.
    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut gguf = b"GGUF\x03\x00\x00\x00".to_vec();
        gguf.extend(&bytes);
        open_gguf(gguf);
        open_safetensors(bytes.clone());
        open_pytorch(bytes);
    }
}
