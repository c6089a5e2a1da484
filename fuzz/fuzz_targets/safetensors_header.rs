//! Any byte string given to the safetensors reader yields a file or a typed error; every tensor
//! of an accepted file reads back with exactly the bytes its dtype and shape call for.
#![no_main]

use ferrum_model::weights::{FileBytes, SafetensorsFile, WeightSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = SafetensorsFile::from_bytes(FileBytes::Owned(data.to_vec()), String::new())
    else {
        return;
    };
    for name in file.names() {
        if let Ok(t) = file.tensor(&name) {
            assert!(t.validate().is_ok(), "{name}");
        }
    }
});
