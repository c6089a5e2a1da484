//! HTTP routes, each answering with and without the `/v1` prefix.

pub mod chat;
pub mod completions;
pub mod info;
pub mod ollama;
pub mod tokenize;

use tokio::sync::OwnedSemaphorePermit;

use crate::error::ApiError;
use crate::state::{AppState, Phase};

/// Takes `choices` admission permits, or answers 429 (503 while draining) at once: a full
/// server refuses quickly instead of queueing without bound.
pub fn admit(state: &AppState, choices: usize) -> Result<OwnedSemaphorePermit, ApiError> {
    if state.phase() == Phase::Draining {
        return Err(ApiError::Unavailable("the server is shutting down".into()));
    }
    let n = u32::try_from(choices).unwrap_or(u32::MAX);
    state
        .permits
        .clone()
        .try_acquire_many_owned(n)
        .map_err(|_| ApiError::Overloaded(state.options.queue_bound))
}
