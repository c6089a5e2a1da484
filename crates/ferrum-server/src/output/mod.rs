//! From engine outputs to what a client sees: detokenization, stop strings, reasoning and
//! tool-call parsing, log-probabilities, per choice.

pub mod choice;
pub mod reasoning;
pub mod stop;
pub mod tools;

pub use choice::{ChoiceConfig, ChoiceState, Delta, FinishReason, TokenLogprob};
