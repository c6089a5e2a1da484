#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("tensor {what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    #[error("{op} does not support dtype {dtype}")]
    UnsupportedDType {
        op: &'static str,
        dtype: ferrum_types::DType,
    },
    #[error("buffer too small: {what} needs {needed} rows, capacity is {capacity}")]
    Capacity {
        what: &'static str,
        needed: usize,
        capacity: usize,
    },
    #[error("invalid batch: {0}")]
    Batch(String),
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    /// A setting the backend reads (an environment variable) has a value it does not know.
    #[error("{0}")]
    Config(String),
    /// A device backend failed (driver, library or kernel); the message names which.
    #[error("{0}")]
    Device(String),
    #[error(transparent)]
    DType(#[from] ferrum_types::DTypeError),
}
