//! `keep-alive`: an engine that is stopped after a while without requests and started again
//! by the next one (Ollama's behaviour), so that rarely used models give their memory back.
//!
//! The tokenizer and template stay loaded (they are small); only the engine (weights and KV
//! cache) goes. The server sees one [`Engine`] throughout.
//!
//! Invariants:
//! - The engine is never stopped while a request of it is in flight: a request counts itself
//!   in flight before it looks for the engine, and the idle check looks at the count under the
//!   same lock that takes the engine away.
//! - One load at a time; requests that arrive during a load wait for it (their stream starts
//!   once the engine runs) instead of starting loads of their own.
//! - A failed reload fails the waiting requests with the loader's message; the next request
//!   tries again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ferrum_types::{EngineOutput, EngineRequest, EngineStats, FinishReason};
use futures_util::StreamExt;

use crate::engine::{Engine, EngineFailure, OutputStream};

/// Starts the engine again; runs on the blocking pool.
pub type EngineLoader = Box<dyn Fn() -> Result<Arc<dyn Engine>, String> + Send + Sync>;

/// An engine that unloads itself after `keep_alive` without requests.
pub struct KeepAliveEngine {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    keep_alive: Duration,
    loader: EngineLoader,
    engine: Mutex<Option<Arc<dyn Engine>>>,
    /// Held for the duration of a load.
    loading: tokio::sync::Mutex<()>,
    in_flight: AtomicUsize,
    last_used: Mutex<Instant>,
    loads: AtomicUsize,
}

/// Counts a request in flight; on drop, marks the model used now.
struct InFlight(Arc<Inner>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut t) = self.0.last_used.lock() {
            *t = Instant::now();
        }
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl KeepAliveEngine {
    /// Wraps the running `engine` of model `name`; must be called inside a Tokio runtime (the
    /// idle check runs on it, and stops when this engine is dropped).
    pub fn start(
        name: &str,
        engine: Arc<dyn Engine>,
        keep_alive: Duration,
        loader: EngineLoader,
    ) -> Self {
        let inner = Arc::new(Inner {
            name: name.to_string(),
            keep_alive,
            loader,
            engine: Mutex::new(Some(engine)),
            loading: tokio::sync::Mutex::new(()),
            in_flight: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
            loads: AtomicUsize::new(1),
        });
        let tick = (keep_alive / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::spawn(idle_check(Arc::downgrade(&inner), tick));
        Self { inner }
    }

    /// Whether the engine is running now.
    pub fn is_loaded(&self) -> bool {
        self.inner.current().is_some()
    }

    /// How often the engine was started (the first start included).
    pub fn loads(&self) -> usize {
        self.inner.loads.load(Ordering::SeqCst)
    }
}

impl Inner {
    fn current(&self) -> Option<Arc<dyn Engine>> {
        self.engine.lock().ok().and_then(|e| e.clone())
    }

    /// Stops the engine when it has been idle for `keep_alive`.
    fn unload_if_idle(&self) {
        let Ok(_loading) = self.loading.try_lock() else {
            return;
        };
        let idle = self
            .last_used
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        let Ok(mut slot) = self.engine.lock() else {
            return;
        };
        if slot.is_none() || idle < self.keep_alive || self.in_flight.load(Ordering::SeqCst) > 0 {
            return;
        }
        if let Some(engine) = slot.take() {
            drop(slot);
            engine.shutdown();
            tracing::info!(
                model = %self.name,
                idle_s = idle.as_secs(),
                "unloaded after keep-alive without requests; the next request loads it again"
            );
        }
    }

    async fn ensure_loaded(self: &Arc<Self>) -> Result<Arc<dyn Engine>, String> {
        let _loading = self.loading.lock().await;
        if let Some(engine) = self.current() {
            return Ok(engine);
        }
        tracing::info!(model = %self.name, "loading again on demand");
        let started = Instant::now();
        let inner = self.clone();
        let engine = tokio::task::spawn_blocking(move || (inner.loader)())
            .await
            .map_err(|e| format!("reloading {} failed: {e}", self.name))?
            .map_err(|e| format!("reloading {} failed: {e}", self.name))?;
        if let Ok(mut slot) = self.engine.lock() {
            *slot = Some(engine.clone());
        }
        self.loads.fetch_add(1, Ordering::SeqCst);
        tracing::info!(model = %self.name, load_ms = started.elapsed().as_millis() as u64, "loaded");
        Ok(engine)
    }
}

async fn idle_check(inner: Weak<Inner>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match inner.upgrade() {
            Some(i) => i.unload_if_idle(),
            None => return,
        }
    }
}

/// The engine's stream, holding the in-flight count until it ends or is dropped.
fn counted(stream: OutputStream, guard: InFlight) -> OutputStream {
    Box::pin(stream.map(move |out| {
        let _ = &guard;
        out
    }))
}

fn failed(request_id: String, message: String) -> EngineOutput {
    EngineOutput {
        request_id,
        new_token_ids: Vec::new(),
        new_logprobs: Vec::new(),
        finish_reason: Some(FinishReason::Error),
        stop_token_id: None,
        num_prompt_tokens: 0,
        num_cached_tokens: 0,
        error: Some(message),
    }
}

fn failure_text(e: EngineFailure) -> String {
    match e {
        EngineFailure::Dead(m) | EngineFailure::Rejected(m) => m,
        EngineFailure::ShuttingDown => "the server is shutting down".into(),
    }
}

impl Engine for KeepAliveEngine {
    fn add_request(&self, request: EngineRequest) -> Result<OutputStream, EngineFailure> {
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self.inner.clone());
        if let Some(engine) = self.inner.current() {
            return Ok(counted(engine.add_request(request)?, guard));
        }
        // Unloaded: the stream starts with the load.
        let inner = self.inner.clone();
        let start = async move {
            let id = request.request_id.clone();
            let stream: OutputStream = match inner.ensure_loaded().await {
                Ok(engine) => match engine.add_request(request) {
                    Ok(s) => s,
                    Err(e) => Box::pin(futures_util::stream::iter([failed(id, failure_text(e))])),
                },
                Err(message) => Box::pin(futures_util::stream::iter([failed(id, message)])),
            };
            counted(stream, guard)
        };
        Ok(Box::pin(futures_util::stream::once(start).flatten()))
    }

    fn stats(&self) -> EngineStats {
        self.inner.current().map(|e| e.stats()).unwrap_or_default()
    }

    /// An unloaded engine is healthy: it loads on demand.
    fn health(&self) -> Result<(), String> {
        self.inner.current().map_or(Ok(()), |e| e.health())
    }

    fn shutdown(&self) {
        if let Some(engine) = self.inner.engine.lock().ok().and_then(|mut e| e.take()) {
            engine.shutdown();
        }
    }
}
