//! Checkpoint readers: safetensors (single or sharded), GGUF, and PyTorch `.bin` (as data
//! only), behind one [`WeightSource`] trait.
//!
//! Invariants:
//! - Opening a checkpoint validates its whole structure (every header field, every tensor's
//!   byte range); a malformed or hostile file yields a typed [`WeightError`], never a panic and
//!   never an allocation sized by an unchecked number from the file.
//! - Tensor data is borrowed from a read-only memory map wherever the layout allows.
//! - Model code sees Hugging Face names and outermost-first shapes for every format.

mod bytes;
mod error;
pub mod gguf;
pub mod pickle;
mod pytorch;
mod safetensors;
mod sharded;
mod source;
mod table;
pub mod zip;

use std::path::Path;

pub use bytes::FileBytes;
pub use error::{Result, WeightError};
pub use gguf::{GgufFile, GgufLayout, GgufMetadata, GgufWeights};
pub use pytorch::PytorchFile;
pub use safetensors::{read_header as read_safetensors_header, SafetensorsFile, MAX_HEADER_BYTES};
pub use sharded::Sharded;
pub use source::{TensorInfo, WeightSource};

/// What [`open_weights`] looks for in a directory, in order of preference.
pub const CHECKPOINT_FILES: [&str; 4] = [
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
];

/// Opens a checkpoint: a `.gguf` (or `.safetensors`, `.bin`, `*.index.json`) file, or a
/// directory holding one of [`CHECKPOINT_FILES`] (the first present wins) or else exactly one
/// `*.gguf` file.
pub fn open_weights(dir_or_file: &Path) -> Result<Box<dyn WeightSource>> {
    if dir_or_file.is_file() {
        return open_file(dir_or_file);
    }
    if dir_or_file.is_dir() {
        for name in CHECKPOINT_FILES {
            let path = dir_or_file.join(name);
            if path.is_file() {
                return open_file(&path);
            }
        }
        // Last resort: a directory holding exactly one GGUF file (as `ferrum pull` may leave).
        if let [gguf] = gguf_files(dir_or_file)?.as_slice() {
            return open_file(gguf);
        }
    }
    Err(WeightError::NotFound {
        dir: dir_or_file.to_path_buf(),
        looked_for: std::iter::once("a .gguf file")
            .chain(CHECKPOINT_FILES)
            .chain(["a directory with a single *.gguf"])
            .map(str::to_string)
            .collect(),
    })
}

fn gguf_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| WeightError::io(dir, e))?;
    Ok(entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "gguf"))
        .collect())
}

fn open_file(path: &Path) -> Result<Box<dyn WeightSource>> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    tracing::debug!(path = %path.display(), "opening checkpoint");
    if name.ends_with(".gguf") {
        Ok(Box::new(GgufWeights::open(path)?))
    } else if name.ends_with(".safetensors.index.json") {
        Ok(Box::new(Sharded::open(path, &|p| {
            Ok(Box::new(SafetensorsFile::open(p)?))
        })?))
    } else if name.ends_with(".bin.index.json") {
        Ok(Box::new(Sharded::open(path, &|p| {
            Ok(Box::new(PytorchFile::open(p)?))
        })?))
    } else if name.ends_with(".safetensors") {
        Ok(Box::new(SafetensorsFile::open(path)?))
    } else if name.ends_with(".bin") || name.ends_with(".pt") || name.ends_with(".pth") {
        Ok(Box::new(PytorchFile::open(path)?))
    } else {
        Err(WeightError::NotFound {
            dir: path.to_path_buf(),
            looked_for: vec![
                "a file ending in .gguf, .safetensors, .bin or .index.json".to_string()
            ],
        })
    }
}
