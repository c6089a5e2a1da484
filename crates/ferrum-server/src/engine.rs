//! What the server needs from an engine, as a trait, so that routes are tested against a fake
//! engine in milliseconds and run against the real one in production.
//!
//! Invariants:
//! - `add_request` never blocks; outputs arrive on the returned stream, the last one with a
//!   finish reason.
//! - Dropping an [`OutputStream`] before its last output aborts the request in the engine and
//!   frees its KV blocks (the real engine's `RequestStream` does this in `Drop`), so every way a
//!   request can end early (client gone, stop string, shutdown) is a drop.

use std::pin::Pin;

use ferrum_types::{EngineOutput, EngineRequest, EngineStats};
use futures_util::Stream;

use crate::error::ApiError;

/// One request's outputs.
pub type OutputStream = Pin<Box<dyn Stream<Item = EngineOutput> + Send>>;

/// Why an engine did not take a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineFailure {
    /// The engine stopped; nothing can be served until a restart.
    Dead(String),
    /// This request can never be served (too long for the KV cache …).
    Rejected(String),
    ShuttingDown,
}

impl From<EngineFailure> for ApiError {
    fn from(e: EngineFailure) -> Self {
        match e {
            EngineFailure::Dead(reason) => ApiError::Engine(reason),
            EngineFailure::Rejected(reason) => ApiError::bad_request(reason),
            EngineFailure::ShuttingDown => {
                ApiError::Unavailable("the server is shutting down".into())
            }
        }
    }
}

pub trait Engine: Send + Sync + 'static {
    fn add_request(&self, request: EngineRequest) -> Result<OutputStream, EngineFailure>;
    /// A cheap snapshot for /metrics.
    fn stats(&self) -> EngineStats;
    /// `Err(reason)` once the engine has died.
    fn health(&self) -> Result<(), String>;
    fn shutdown(&self);
}
