#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error(transparent)]
    Model(#[from] ferrum_model::ModelError),
    #[error(transparent)]
    Backend(#[from] ferrum_backend::BackendError),
    #[error("invalid step: {0}")]
    InvalidStep(String),
}

pub type Result<T> = std::result::Result<T, ExecutorError>;
