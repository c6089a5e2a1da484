//! Any byte string given to the GGUF reader yields a file or a typed error; every tensor of an
//! accepted file reads back with exactly the bytes its dtype and shape call for.
#![no_main]

use ferrum_model::weights::{FileBytes, GgufFile, GgufLayout, GgufWeights, WeightSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(FileBytes::Owned(data.to_vec()), String::new()) else {
        return;
    };
    for t in file.tensors() {
        let _ = file.tensor_data(t);
    }
    let Ok(weights) = GgufWeights::new(file, GgufLayout::HuggingFace) else {
        return;
    };
    for name in weights.names() {
        if let Ok(t) = weights.tensor(&name) {
            assert!(t.validate().is_ok(), "{name}");
        }
    }
});
