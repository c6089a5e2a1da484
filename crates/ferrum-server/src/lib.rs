//! Ferrum's HTTP server: OpenAI-compatible routes (a drop-in for `vllm serve`), validation,
//! SSE streaming, auth, backpressure, metrics and graceful shutdown.
//!
//! Data flow of one request: `body` (size, JSON) → `protocol` (typed fields, unknown ones
//! logged) → `validate` (ranges, caps, vocabulary) → admission (`routes::admit`, 429) →
//! `prompt` (template + tokenizer on the blocking pool) → `driver` (engine requests, one per
//! choice) → `output` (detokenize, stop strings, reasoning, tool calls) → `respond` (JSON or
//! SSE). Errors of every step are [`ApiError`]s, mapped to statuses in `error.rs` only.
//!
//! Invariants:
//! - JSON stops here: the engine sees token ids and sampling parameters only.
//! - Every request's engine work is owned by its `Driver`; dropping it aborts the work.
//! - No `unwrap` on request data; every failure is a typed error and a 4xx/5xx response.

mod app;
mod auth;
mod body;
mod driver;
mod engine;
mod engine_handle;
mod error;
mod ids;
mod keep_alive;
mod limits;
mod listen;
mod metrics;
mod middleware;
mod output;
mod prompt;
mod protocol;
mod registry;
mod respond;
mod response;
mod routes;
mod shutdown;
mod state;
mod validate;

pub use app::build_router;
pub use engine::{Engine, EngineFailure, OutputStream};
pub use error::ApiError;
pub use keep_alive::{EngineLoader, KeepAliveEngine};
pub use listen::{bind, explain_bind_error};
pub use registry::{ModelRoute, ServedModel};
pub use shutdown::{drain, serve, termination_signal};
pub use state::{AppState, ModelContext, Phase, ServerOptions};
