//! The server's shared state: options fixed at start-up, the models (each set once it has
//! loaded), the life-cycle phase, the admission semaphore and the metrics.
//!
//! Invariants:
//! - The HTTP listener opens before the models load: `/health` says 503 "loading" and
//!   `/v1/models` answers from the options, while a model's routes answer 503 until
//!   [`AppState::set_model_ready`] installs it (a model that is ready serves while others
//!   still load).
//! - The phase only moves forward: Loading → Ready (every model loaded) → Draining, or to
//!   Failed from anywhere. An engine that dies fails its own model only; `/health` reports it.
//! - Nothing here is behind a lock: each model is a `OnceLock`, the phase an atomic, shutdown a
//!   `watch` channel that every request driver listens to.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrum_config::{ModelSpec, ReasoningParserKind, ServeArgs, ToolParserKind};
use ferrum_tokenizer::{ChatTemplate, Tokenizer};
use ferrum_types::SamplingParams;
use tokio::sync::{watch, Semaphore};

use crate::auth::ApiKeys;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::metrics::HttpMetrics;
use crate::registry::{resolve, ModelRoute, ServedModel};

/// Settings of the HTTP layer, fixed at start-up.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The models served, in order; the first is the default for requests without `model`.
    pub models: Vec<ModelRoute>,
    pub api_keys: Vec<String>,
    /// CORS: off when empty; otherwise these origins (`*` any) with the methods, headers and
    /// credentials below (empty methods/headers: any, as in vLLM).
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub allow_credentials: bool,
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
    /// Options from the parsed flags and the models resolved from them.
    pub fn from_args(
        args: &ServeArgs,
        specs: &[ModelSpec],
    ) -> Result<Self, ferrum_config::ConfigError> {
        Ok(Self {
            models: specs
                .iter()
                .map(|s| ModelRoute::new(s.served_model_name.clone(), s.model.clone()))
                .collect(),
            api_keys: args.server.api_key.clone(),
            allowed_origins: args.server.allowed_origins.clone(),
            allowed_methods: args.server.allowed_methods.clone(),
            allowed_headers: args.server.allowed_headers.clone(),
            allow_credentials: args.server.allow_credentials,
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
            models: vec![ModelRoute::new(vec![name.to_string()], name)],
            api_keys: Vec::new(),
            allowed_origins: Vec::new(),
            allowed_methods: Vec::new(),
            allowed_headers: Vec::new(),
            allow_credentials: false,
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

    /// The default model's first name.
    pub fn primary_name(&self) -> &str {
        self.models
            .first()
            .map_or("model", ModelRoute::primary_name)
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
    /// One per model, in the order of `options.models`.
    pub models: Vec<ServedModel>,
    phase: AtomicU8,
    failure: OnceLock<String>,
    /// Admission: one permit per choice in the server.
    pub permits: Arc<Semaphore>,
    /// Becomes `true` when the drain time is over: every request driver ends its request.
    pub abort_all: watch::Sender<bool>,
    pub http_metrics: HttpMetrics,
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
        let models = options
            .models
            .iter()
            .enumerate()
            .map(|(i, route)| ServedModel::new(i, route.clone()))
            .collect();
        Self(Arc::new(Shared {
            api_keys: ApiKeys::new(&options.api_keys),
            permits: Arc::new(Semaphore::new(options.queue_bound)),
            options,
            models,
            phase: AtomicU8::new(Phase::Loading as u8),
            failure: OnceLock::new(),
            abort_all,
            http_metrics: HttpMetrics::default(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }))
    }

    /// Installs the default (or only) model; see [`AppState::set_model_ready`].
    pub fn set_ready(&self, model: ModelContext) {
        self.set_model_ready(0, model);
    }

    /// Installs model `index` once its engine has started; when every model is in, the
    /// server is ready. A second call for the same model is ignored.
    pub fn set_model_ready(&self, index: usize, model: ModelContext) {
        let Some(slot) = self.models.get(index) else {
            return;
        };
        if slot.context.set(model).is_ok() && self.models.iter().all(|m| m.context.get().is_some())
        {
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

    /// Why the server is not ready, or `None` when every model is (checks the engines too).
    pub fn not_ready_reason(&self) -> Option<String> {
        match self.phase() {
            Phase::Draining => Some("the server is shutting down".into()),
            Phase::Failed => Some(
                self.failure
                    .get()
                    .cloned()
                    .unwrap_or_else(|| "the engine failed".into()),
            ),
            Phase::Loading | Phase::Ready => {
                let several = self.models.len() > 1;
                let reasons: Vec<String> = self
                    .models
                    .iter()
                    .filter_map(|m| m.not_ready_reason(several))
                    .collect();
                (!reasons.is_empty()).then(|| reasons.join("; "))
            }
        }
    }

    /// The model a request names (absent: the default) and the name it used; 404 listing
    /// the served names when there is none.
    pub fn resolve_model(
        &self,
        requested: Option<&str>,
    ) -> Result<(&ServedModel, String), ApiError> {
        resolve(&self.models, requested)
    }

    /// `model`'s engine and tokenizer, when it can serve requests.
    pub fn ready_model<'a>(&self, model: &'a ServedModel) -> Result<&'a ModelContext, ApiError> {
        match self.phase() {
            Phase::Draining | Phase::Failed => {
                return Err(ApiError::Unavailable(
                    self.not_ready_reason()
                        .unwrap_or_else(|| "the server is not ready".into()),
                ))
            }
            Phase::Loading | Phase::Ready => {}
        }
        if let Some(reason) = model.not_ready_reason(self.models.len() > 1) {
            return Err(ApiError::Unavailable(reason));
        }
        model
            .context
            .get()
            .ok_or_else(|| ApiError::Unavailable("the model is loading".into()))
    }

    /// Requests (choices) in the server now.
    pub fn in_flight(&self) -> usize {
        self.options.queue_bound - self.permits.available_permits()
    }
}
