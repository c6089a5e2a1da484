use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("config.json: missing field `{0}`")]
    MissingField(&'static str),
    #[error("unsupported model: {field} = {value} ({hint})")]
    Unsupported {
        field: String,
        value: String,
        hint: String,
    },
    #[error("invalid config: {field} = {value}: {reason}")]
    InvalidConfig {
        field: String,
        value: String,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("model files: {0}")]
    Files(String),
    #[error("weights: {0}")]
    Weights(#[from] crate::weights::WeightError),
    #[error("tensor {name}: expected shape {expected:?}, found {found:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("backend: {0}")]
    Backend(#[from] ferrum_backend::BackendError),
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] ferrum_tokenizer::TokenizerError),
}

pub type Result<T> = std::result::Result<T, ModelError>;
