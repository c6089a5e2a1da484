//! The engine: `EngineCore` runs on its own OS thread (`step()` = schedule, execute, update),
//! and `EngineHandle` lets async callers add and abort requests and read stats.
//!
//! Invariants:
//! - The engine thread owns every request and block; callers hold ids and channels only.
//! - The thread blocks when it has nothing to do and never sleeps to gather a batch.
//! - Dropping a request's output stream aborts the request and frees its KV blocks.
//! - An engine failure ends every request in flight with an error and marks the engine dead.

mod config;
mod core;
mod error;
mod handle;
mod sizing;
mod thread;

pub use config::{Device, EngineConfig, EngineInfo, SchedulingPolicy};
pub use core::EngineCore;
pub use error::EngineError;
pub use handle::{EngineHandle, RequestStream};
pub use sizing::{
    plan_cpu_kv_cache, plan_gpu_kv_cache, workspace_bytes, GpuMemory, KvPlan,
    DEFAULT_CPU_KV_CACHE_BYTES,
};
pub use thread::start_engine;
