//! Errors of the checkpoint readers.
//!
//! Every way a file can be malformed has its own variant, and every variant names what it is
//! about (the file, the tensor, the opcode, the key), so that a user can tell a truncated
//! download from an unsupported format from a malicious pickle.

use std::path::PathBuf;

use ferrum_types::DType;

#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("no checkpoint in {dir}: looked for {}", looked_for.join(", "))]
    NotFound {
        dir: PathBuf,
        looked_for: Vec<String>,
    },

    #[error("{format} file is truncated: {what} needs {needed} bytes at offset {offset}, file has {len}")]
    Truncated {
        format: &'static str,
        what: String,
        offset: u64,
        needed: u64,
        len: u64,
    },

    #[error("not a {format} file: bad magic {found}")]
    BadMagic { format: &'static str, found: String },

    #[error("unsupported {format} version {version}")]
    UnsupportedVersion { format: &'static str, version: u64 },

    #[error("{format} header is malformed: {reason}")]
    BadHeader {
        format: &'static str,
        reason: String,
    },

    #[error("{format}: {what} is {value}, over the limit of {limit}")]
    LimitExceeded {
        format: &'static str,
        what: String,
        value: u64,
        limit: u64,
    },

    #[error("tensor {tensor}: bytes {start}..{end} lie outside the data section of {len} bytes")]
    OutOfBounds {
        tensor: String,
        start: u64,
        end: u64,
        len: u64,
    },

    #[error("tensor {tensor}: its data overlaps tensor {other}")]
    Overlap { tensor: String, other: String },

    #[error("tensor {tensor}: offset {offset} is not a multiple of the alignment {alignment}")]
    Misaligned {
        tensor: String,
        offset: u64,
        alignment: u64,
    },

    #[error("tensor {tensor}: {dtype} {shape:?} needs {expected} bytes but the file gives {got}")]
    SizeMismatch {
        tensor: String,
        dtype: DType,
        shape: Vec<usize>,
        expected: u64,
        got: u64,
    },

    #[error("tensor {tensor}: unsupported dtype {dtype}")]
    UnknownDType { tensor: String, dtype: String },

    #[error("tensor {tensor}: shape {shape:?} is invalid: {reason}")]
    BadShape {
        tensor: String,
        shape: Vec<u64>,
        reason: String,
    },

    #[error("no tensor named {name}{}", in_file.as_ref().map(|f| format!(" in {f}")).unwrap_or_default())]
    MissingTensor {
        name: String,
        in_file: Option<String>,
    },

    #[error(
        "pickle opcode {name} (0x{opcode:02x}) at byte {offset} is not allowed in a weights file"
    )]
    PickleOpcode {
        opcode: u8,
        name: &'static str,
        offset: usize,
    },

    #[error("pickle global {module}.{name} is not allowed in a weights file")]
    PickleGlobal { module: String, name: String },

    #[error("pickle is malformed at byte {offset}: {reason}")]
    Pickle { offset: usize, reason: String },

    #[error(
        "zip entry {entry} uses compression method {method}; only stored entries are supported"
    )]
    CompressedEntry { entry: String, method: u16 },

    #[error("metadata key {key} is missing")]
    MissingMetadata { key: String },

    #[error("metadata {key} is {found}, expected {expected}")]
    MetadataType {
        key: String,
        expected: &'static str,
        found: String,
    },
}

pub type Result<T, E = WeightError> = std::result::Result<T, E>;

impl WeightError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WeightError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn header(format: &'static str, reason: impl Into<String>) -> Self {
        WeightError::BadHeader {
            format,
            reason: reason.into(),
        }
    }

    pub(crate) fn missing(name: impl Into<String>) -> Self {
        WeightError::MissingTensor {
            name: name.into(),
            in_file: None,
        }
    }
}
