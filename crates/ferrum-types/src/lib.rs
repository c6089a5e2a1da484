//! Shared vocabulary used across Ferrum's crates.
//!
//! Invariant: this crate has no dependency on tensors, devices or HTTP; everything here is plain
//! data that can cross thread and crate boundaries.

mod dtype;
mod engine;
mod sampling;

pub use dtype::{DType, DTypeError};
pub use engine::{EngineOutput, EngineRequest, EngineStats, TokenLogprobs};
pub use sampling::{FinishReason, SamplingParams};

/// A token id in the model's vocabulary.
pub type TokenId = u32;
