//! Test support: a scripted fake engine and an app built on a random-weight Qwen3 tokenizer.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use ferrum_server::{AppState, Engine, EngineFailure, ModelContext, OutputStream, ServerOptions};
use ferrum_tokenizer::Tokenizer;
use ferrum_types::{
    EngineOutput, EngineRequest, EngineStats, FinishReason, SamplingParams, TokenId, TokenLogprobs,
};
use serde_json::Value;
use tower::ServiceExt;

pub const MODEL: &str = "tiny";

/// Emits the tokens of a scripted text, one per output, `delay` apart.
pub struct FakeEngine {
    pub script: Mutex<Vec<TokenId>>,
    pub delay: Mutex<Duration>,
    pub running: Arc<AtomicUsize>,
    pub added: AtomicUsize,
    pub dead: Arc<OnceLock<String>>,
    pub eos: TokenId,
    pub last_request: Mutex<Option<EngineRequest>>,
}

struct Live {
    running: Arc<AtomicUsize>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Engine for FakeEngine {
    fn add_request(&self, req: EngineRequest) -> Result<OutputStream, EngineFailure> {
        if let Some(reason) = self.dead.get() {
            return Err(EngineFailure::Dead(reason.clone()));
        }
        self.added.fetch_add(1, Ordering::SeqCst);
        *self.last_request.lock().expect("lock") = Some(req.clone());
        self.running.fetch_add(1, Ordering::SeqCst);
        let live = Live {
            running: self.running.clone(),
        };
        let script = self.script.lock().expect("lock").clone();
        let delay = *self.delay.lock().expect("lock");
        let eos = self.eos;
        let prompt_len = req.prompt_token_ids.len();
        let dead = self.dead.clone();
        let state = (0usize, req, live, script, false);
        let stream = futures_util::stream::unfold(state, move |(i, req, live, script, done)| {
            let dead = dead.clone();
            async move {
                if done {
                    return None;
                }
                tokio::time::sleep(delay).await;
                if dead.get().is_some() {
                    return None; // a dead engine's channels close without a final output
                }
                let p: &SamplingParams = &req.sampling;
                let tok = script.get(i).copied().unwrap_or(eos);
                let n = i + 1;
                let finish = if script.get(i).is_none() && !p.ignore_eos {
                    Some(FinishReason::Stop)
                } else if n >= p.max_tokens {
                    Some(FinishReason::Length)
                } else {
                    None
                };
                let new_logprobs = match p.logprobs {
                    Some(k) => vec![TokenLogprobs {
                        token_id: tok,
                        logprob: -0.5,
                        top: (0..k).map(|j| (tok + j as u32, -0.5 - j as f32)).collect(),
                    }],
                    None => Vec::new(),
                };
                let out = EngineOutput {
                    request_id: req.request_id.clone(),
                    new_token_ids: vec![tok],
                    new_logprobs,
                    finish_reason: finish,
                    stop_token_id: (finish == Some(FinishReason::Stop)).then_some(eos),
                    num_prompt_tokens: prompt_len,
                    num_cached_tokens: 0,
                    error: None,
                };
                Some((out, (n, req, live, script, finish.is_some())))
            }
        });
        Ok(Box::pin(stream))
    }

    fn stats(&self) -> EngineStats {
        let r = self.running.load(Ordering::SeqCst);
        EngineStats {
            num_running: r,
            kv_cache_usage: r as f64 / 100.0,
            ..EngineStats::default()
        }
    }

    fn health(&self) -> Result<(), String> {
        match self.dead.get() {
            Some(r) => Err(r.clone()),
            None => Ok(()),
        }
    }

    fn shutdown(&self) {}
}

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub engine: Arc<FakeEngine>,
    pub tokenizer: Arc<Tokenizer>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(configure: impl FnOnce(&mut ServerOptions)) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        ferrum_testkit::write_test_model(dir.path(), &ferrum_testkit::tiny_qwen3()).expect("model");
        let bundle = ferrum_model::ModelBundle::open(dir.path()).expect("bundle");
        let template = bundle.compile_chat_template().expect("template");
        let tokenizer = Arc::new(bundle.tokenizer);
        let eos = bundle.config.eos_token_ids.first().copied().unwrap_or(0);
        let engine = Arc::new(FakeEngine {
            script: Mutex::new(Vec::new()),
            delay: Mutex::new(Duration::from_millis(1)),
            running: Arc::new(AtomicUsize::new(0)),
            added: AtomicUsize::new(0),
            dead: Arc::new(OnceLock::new()),
            eos,
            last_request: Mutex::new(None),
        });
        let mut options = ServerOptions::for_model(MODEL);
        configure(&mut options);
        let state = AppState::new(options);
        state.set_ready(ModelContext {
            engine: engine.clone(),
            tokenizer: tokenizer.clone(),
            template: Some(Arc::new(template)),
            max_model_len: 1024,
            vocab_size: bundle.config.vocab_size,
            default_sampling: SamplingParams::default(),
            default_max_tokens: None,
        });
        let app = Self {
            router: ferrum_server::build_router(state.clone()),
            state,
            engine,
            tokenizer,
            _dir: dir,
        };
        app.script("Hello from the fake engine.");
        app
    }

    /// What the fake engine will generate.
    pub fn script(&self, text: &str) {
        let ids = self.tokenizer.encode(text, false).expect("encode");
        *self.engine.script.lock().expect("lock") = ids;
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let req = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let (status, _, text) = self.send(req).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let (s, _, t) = self
            .send(Request::get(path).body(Body::empty()).expect("req"))
            .await;
        (s, t)
    }

    /// The `data:` payloads of an SSE body.
    pub async fn post_stream(&self, path: &str, body: &Value) -> (StatusCode, Vec<String>) {
        let req = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let (status, _, text) = self.send(req).await;
        (status, sse_data(&text))
    }
}

pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// Asserts the OpenAI error shape.
pub fn assert_error_shape(body: &Value) {
    let e = body
        .get("error")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no error object in {body}"));
    for key in ["message", "type", "param", "code"] {
        assert!(e.contains_key(key), "{key} missing in {body}");
    }
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// A random-weight test model's tokenizer and template with a scripted fake engine that
/// answers `reply`; the folder must outlive the context.
pub fn fake_model(
    spec: &ferrum_testkit::TestModelSpec,
    max_model_len: usize,
    reply: &str,
) -> (Arc<FakeEngine>, ModelContext, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    ferrum_testkit::write_test_model(dir.path(), spec).expect("model");
    let bundle = ferrum_model::ModelBundle::open(dir.path()).expect("bundle");
    let template = bundle.compile_chat_template().expect("template");
    let tokenizer = Arc::new(bundle.tokenizer);
    let engine = Arc::new(FakeEngine {
        script: Mutex::new(tokenizer.encode(reply, false).expect("encode")),
        delay: Mutex::new(Duration::from_millis(1)),
        running: Arc::new(AtomicUsize::new(0)),
        added: AtomicUsize::new(0),
        dead: Arc::new(OnceLock::new()),
        eos: bundle.config.eos_token_ids.first().copied().unwrap_or(0),
        last_request: Mutex::new(None),
    });
    let context = ModelContext {
        engine: engine.clone(),
        tokenizer,
        template: Some(Arc::new(template)),
        max_model_len,
        vocab_size: bundle.config.vocab_size,
        default_sampling: SamplingParams::default(),
        default_max_tokens: None,
    };
    (engine, context, dir)
}
