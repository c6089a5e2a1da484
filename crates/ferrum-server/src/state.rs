//! The server's shared state: options fixed at start-up, the model (set once it has loaded),
//! the life-cycle phase, the admission semaphore and the metrics.
//!
//! Invariants:
//! - The HTTP listener opens before the model loads: `/health` says 503 "loading" and
//!   `/v1/models` answers from the options, while model routes answer 503 until
//!   [`AppState::set_ready`] installs the model.
//! - The phase only moves forward: Loading → Ready → Draining, or to Failed from anywhere.
//! - Nothing here is behind a lock: the model is a `OnceLock`, the phase an atomic, shutdown a
//!   `watch` channel that every request driver listens to.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrum_config::{ReasoningParserKind, ServeArgs, ToolParserKind};
use ferrum_tokenizer::{ChatTemplate, Tokenizer};
use ferrum_types::SamplingParams;
use tokio::sync::{watch, Semaphore};

use crate::auth::ApiKeys;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Settings of the HTTP layer, fixed at start-up.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The names the API answers to; the first is reported and used as the metrics label.
    pub served_model_names: Vec<String>,
    /// Where the model came from (reported as `root` in /v1/models).
    pub model_source: String,
    pub api_keys: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub max_logprobs: usize,
    pub max_body_bytes: u64,
    /// Requests in the server at once (each of `n` choices counts); beyond it 429.
    pub queue_bound: usize,
    pub shutdown_timeout: Duration,
    pub auto_tool_choice: bool,
    pub tool_parser: Option<ToolParserKind>,
    pub reasoning_parser: Option<ReasoningParserKind>,
    /// /metrics needs the API key (when keys are set).
    pub metrics_auth: bool,
    pub log_requests: bool,
    /// Put prompt and output text into the per-request log line.
    pub log_outputs: bool,
    /// SSE comment interval; also how soon a silent stream notices a gone client.
    pub keep_alive: Duration,
}

impl ServerOptions {
    /// Options from the parsed flags; `default_name` is used when no --served-model-name.
    pub fn from_args(
        args: &ServeArgs,
        default_name: &str,
    ) -> Result<Self, ferrum_config::ConfigError> {
        let mut names = args.model.served_model_name.clone();
        if names.is_empty() {
            names.push(default_name.to_string());
        }
        Ok(Self {
            served_model_names: names,
            model_source: args.model_path().unwrap_or_default().to_string(),
            api_keys: args.server.api_key.clone(),
            allowed_origins: args.server.allowed_origins.clone(),
            max_logprobs: args.model.max_logprobs,
            max_body_bytes: args.server.max_request_body_bytes,
            queue_bound: args.scheduler.queue_bound(),
            shutdown_timeout: Duration::from_secs(args.server.shutdown_timeout),
            auto_tool_choice: args.server.auto_tool_choice(),
            tool_parser: args.tool_parser()?,
            reasoning_parser: args.reasoning_parser()?,
            metrics_auth: !args.server.disable_metrics_auth,
            log_requests: !args.logging.disable_log_requests,
            log_outputs: args.logging.enable_log_outputs,
            keep_alive: Duration::from_secs(5),
        })
    }

    /// Options for tests and embedding: one name, no keys, defaults elsewhere.
    pub fn for_model(name: &str) -> Self {
        Self {
            served_model_names: vec![name.to_string()],
            model_source: name.to_string(),
            api_keys: Vec::new(),
            allowed_origins: Vec::new(),
            max_logprobs: 20,
            max_body_bytes: 8 << 20,
            queue_bound: 1024,
            shutdown_timeout: Duration::from_secs(30),
            auto_tool_choice: false,
            tool_parser: None,
            reasoning_parser: None,
            metrics_auth: true,
            log_requests: false,
            log_outputs: false,
            keep_alive: Duration::from_secs(5),
        }
    }

    pub fn primary_name(&self) -> &str {
        self.served_model_names
            .first()
            .map_or("model", String::as_str)
    }
}

/// The loaded model: what routes need to tokenize, validate and generate.
pub struct ModelContext {
    pub engine: Arc<dyn Engine>,
    pub tokenizer: Arc<Tokenizer>,
    pub template: Option<Arc<ChatTemplate>>,
    /// Prompt + output tokens one request may use.
    pub max_model_len: usize,
    /// Token ids must be below this.
    pub vocab_size: usize,
    /// Sampling defaults (the model's generation_config.json over OpenAI's defaults).
    pub default_sampling: SamplingParams,
    /// The model's `max_new_tokens`, a cap on the default output length.
    pub default_max_tokens: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Loading = 0,
    Ready = 1,
    Draining = 2,
    Failed = 3,
}

pub struct Shared {
    pub options: ServerOptions,
    pub api_keys: ApiKeys,
    pub model: OnceLock<ModelContext>,
    phase: AtomicU8,
    failure: OnceLock<String>,
    /// Admission: one permit per choice in the server.
    pub permits: Arc<Semaphore>,
    /// Becomes `true` when the drain time is over: every request driver ends its request.
    pub abort_all: watch::Sender<bool>,
    pub metrics: Metrics,
    /// Unix seconds at start, reported as `created` in /v1/models.
    pub created: u64,
}

/// Cheap to clone; one per route handler.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(options: ServerOptions) -> Self {
        let (abort_all, _) = watch::channel(false);
        let metrics = Metrics::new(options.primary_name());
        Self(Arc::new(Shared {
            api_keys: ApiKeys::new(&options.api_keys),
            permits: Arc::new(Semaphore::new(options.queue_bound)),
            options,
            model: OnceLock::new(),
            phase: AtomicU8::new(Phase::Loading as u8),
            failure: OnceLock::new(),
            abort_all,
            metrics,
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }))
    }

    /// Installs the loaded model and starts serving. A second call is ignored.
    pub fn set_ready(&self, model: ModelContext) {
        if self.model.set(model).is_ok() {
            let _ = self.phase.compare_exchange(
                Phase::Loading as u8,
                Phase::Ready as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }

    /// Start-up failed or the engine died: /health turns 503 with `reason`.
    pub fn set_failed(&self, reason: impl Into<String>) {
        let _ = self.failure.set(reason.into());
        self.phase.store(Phase::Failed as u8, Ordering::SeqCst);
    }

    /// SIGTERM: new requests get 503, running ones continue.
    pub fn set_draining(&self) {
        let _ = self.phase.compare_exchange(
            Phase::Ready as u8,
            Phase::Draining as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        let _ = self.phase.compare_exchange(
            Phase::Loading as u8,
            Phase::Draining as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Loading,
            1 => Phase::Ready,
            2 => Phase::Draining,
            _ => Phase::Failed,
        }
    }

    /// Why the server is not ready, or `None` when it is (checks the engine too).
    pub fn not_ready_reason(&self) -> Option<String> {
        match self.phase() {
            Phase::Loading => Some("the model is loading".into()),
            Phase::Draining => Some("the server is shutting down".into()),
            Phase::Failed => Some(
                self.failure
                    .get()
                    .cloned()
                    .unwrap_or_else(|| "the engine failed".into()),
            ),
            Phase::Ready => {
                let engine_health = self.model.get().map(|m| m.engine.health());
                match engine_health {
                    Some(Err(reason)) => {
                        self.set_failed(format!("the engine died: {reason}"));
                        self.failure.get().cloned()
                    }
                    _ => None,
                }
            }
        }
    }

    /// The model, when requests can be served.
    pub fn ready_model(&self) -> Result<&ModelContext, ApiError> {
        if let Some(reason) = self.not_ready_reason() {
            return Err(ApiError::Unavailable(reason));
        }
        self.model
            .get()
            .ok_or_else(|| ApiError::Unavailable("the model is loading".into()))
    }

    /// Checks the request's `model` against the served names (absent means the default).
    pub fn check_model_name(&self, requested: Option<&str>) -> Result<String, ApiError> {
        match requested {
            None | Some("") => Ok(self.options.primary_name().to_string()),
            Some(name) if self.options.served_model_names.iter().any(|n| n == name) => {
                Ok(name.to_string())
            }
            Some(name) => Err(ApiError::ModelNotFound(name.to_string())),
        }
    }

    /// Requests (choices) in the server now.
    pub fn in_flight(&self) -> usize {
        self.options.queue_bound - self.permits.available_permits()
    }
}
