//! Turns scheduled work into a forward pass and sampled tokens.
//!
//! Invariant: the executor sees token ids, positions and block tables only; text never reaches
//! it, and it never decides which requests run (the scheduler does).

mod deferred;
mod error;
mod executor;
mod input_batch;
mod rng;
mod runner;
mod sampler;

pub use deferred::{PendingStep, Submitted};
pub use error::ExecutorError;
pub use executor::Executor;
pub use rng::Rng;
pub use runner::{ModelRunner, SeqInput};
pub use sampler::{logit_adjustments, row_sampling, sample, Logprobs, SampledToken, SequenceView};
