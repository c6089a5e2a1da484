#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The engine thread stopped after a failure; requests cannot be served.
    #[error("engine is dead: {0}")]
    Dead(String),
    /// The request can never be served (too long for the context or the KV cache, bad ids).
    #[error("{0}")]
    Rejected(String),
    #[error("engine is shutting down")]
    ShuttingDown,
    /// Start-up failed (model load, memory planning, configuration).
    #[error("{0}")]
    Startup(String),
}
