//! The one error type of the testkit.

use std::path::PathBuf;

/// Everything that can go wrong while writing a test model.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// The spec asks for something the generator cannot write; the message names the field.
    #[error("invalid test model spec: {0}")]
    InvalidSpec(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `qwen.tiktoken` rank file is malformed or not a consistent BPE vocabulary.
    #[error("{path}:{line}: {reason}")]
    Vocab {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// Serializing one of the JSON files failed.
    #[error("JSON serialization failed: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T> = std::result::Result<T, TestkitError>;

/// Attaches the path to an I/O error, since `std::io::Error` does not carry it.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TestkitError {
    let path = path.into();
    move |source| TestkitError::Io { path, source }
}
