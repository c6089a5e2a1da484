//! The restricted unpickler and the torch zip reader never panic: the input is run both as a
//! bare `data.pkl` and as a whole `.bin` archive.
#![no_main]

use ferrum_model::weights::pickle::unpickle;
use ferrum_model::weights::{FileBytes, PytorchFile, WeightSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = unpickle(data);
    let Ok(file) = PytorchFile::from_bytes(FileBytes::Owned(data.to_vec()), String::new()) else {
        return;
    };
    for name in file.names() {
        if let Ok(t) = file.tensor(&name) {
            assert!(t.validate().is_ok(), "{name}");
        }
    }
});
