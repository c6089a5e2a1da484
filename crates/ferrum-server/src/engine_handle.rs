//! The real engine behind the [`Engine`] trait.
//!
//! Invariant: the engine's `RequestStream` aborts its request when dropped; the stream built
//! here owns it, so dropping the server's `OutputStream` drops it and the abort follows.

use ferrum_engine::{EngineError, EngineHandle};
use ferrum_types::{EngineRequest, EngineStats};

use crate::engine::{Engine, EngineFailure, OutputStream};

impl From<EngineError> for EngineFailure {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Dead(reason) | EngineError::Startup(reason) => EngineFailure::Dead(reason),
            EngineError::Rejected(reason) => EngineFailure::Rejected(reason),
            EngineError::ShuttingDown => EngineFailure::ShuttingDown,
        }
    }
}

impl Engine for EngineHandle {
    fn add_request(&self, request: EngineRequest) -> Result<OutputStream, EngineFailure> {
        let stream = EngineHandle::add_request(self, request)?;
        Ok(Box::pin(futures_util::stream::unfold(
            stream,
            |mut s| async move { s.next().await.map(|out| (out, s)) },
        )))
    }

    fn stats(&self) -> EngineStats {
        EngineHandle::stats(self)
    }

    fn health(&self) -> Result<(), String> {
        EngineHandle::health(self).map_err(|e| e.to_string())
    }

    fn shutdown(&self) {
        EngineHandle::shutdown(self)
    }
}
