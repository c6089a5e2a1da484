//! The continuous-batching scheduler: request states, queues and policies, the token-budget
//! `schedule()`, preemption by recompute, and `update_from_output()`.
//!
//! Invariants of the crate:
//! - no tensors: requests, token ids and block ids only; tests assert exact plans;
//! - one owner: the engine thread owns the `Scheduler` (and through it the KV-cache manager);
//! - every step is `schedule()` → executor → `update_from_output()`; the executor gets new
//!   requests in full and running ones as diffs (`SchedulerOutput`). With async scheduling the
//!   update comes in two halves around the next `schedule()` (provisional.rs);
//! - admission refuses what can never fit, and the preemption rule (schedule_running.rs) makes
//!   sure every admitted request completes.
//!
//! Layout: `request` (state machine) · `queue` (key-ordered queues) · `config` · `schedule` →
//! `schedule_running` (with preemption) + `schedule_waiting` (admission) · `update` + `stop` ·
//! `provisional` (async scheduling) ·
//! `output` (the types that cross the boundary).

mod config;
mod error;
mod output;
mod provisional;
mod queue;
mod request;
mod schedule;
mod schedule_running;
mod schedule_waiting;
mod scheduler;
mod stop;
mod update;

#[cfg(test)]
mod tests;

pub use config::{SchedulerConfig, SchedulingPolicy};
pub use error::SchedulerError;
pub use ferrum_kv::{BlockId, ExtraKeys, KvCacheManager};
pub use output::{
    CachedRequestData, EngineCoreOutput, Logprob, ModelRunnerOutput, NewRequestData, RequestMap,
    SchedulerOutput, TokenLogprobs,
};
pub use provisional::PLACEHOLDER_TOKEN;
pub use request::{Request, RequestId, RequestStatus};
pub use scheduler::{Scheduler, SchedulerStats};
