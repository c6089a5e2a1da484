//! Several models in one server: routing by `model` (aliases too), listing, the 404 that names
//! the served models, per-model limits, health and metrics per model. Each model has its own
//! scripted fake engine and its own random-weight test model's tokenizer.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{assert_error_shape, FakeEngine};
use ferrum_server::{AppState, ModelContext, ModelRoute, ServerOptions};
use ferrum_testkit::TestModelSpec;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Model {
    engine: Arc<FakeEngine>,
    context: Option<ModelContext>,
    _dir: tempfile::TempDir,
}

fn model(spec: &TestModelSpec, max_model_len: usize, reply: &str) -> Model {
    let (engine, context, dir) = common::fake_model(spec, max_model_len, reply);
    Model {
        engine,
        context: Some(context),
        _dir: dir,
    }
}

struct Two {
    state: AppState,
    router: axum::Router,
    qwen: Model,
    llama: Model,
}

/// qwen (alias qwen-alias, 1024 tokens) and llama (64 tokens); nothing loaded yet.
fn two() -> Two {
    let mut options = ServerOptions::for_model("unused");
    options.models = vec![
        ModelRoute::new(vec!["qwen".into(), "qwen-alias".into()], "/models/qwen3"),
        ModelRoute::new(vec!["llama".into()], "/models/llama"),
    ];
    let state = AppState::new(options);
    Two {
        router: ferrum_server::build_router(state.clone()),
        state,
        qwen: model(&ferrum_testkit::tiny_qwen3(), 1024, "from qwen"),
        llama: model(&ferrum_testkit::tiny_llama(), 64, "from llama"),
    }
}

impl Two {
    fn ready(mut self) -> Self {
        self.load_qwen();
        self.load_llama();
        self
    }

    fn load_qwen(&mut self) {
        let c = self.qwen.context.take().expect("once");
        self.state.set_model_ready(0, c);
    }

    fn load_llama(&mut self) {
        let c = self.llama.context.take().expect("once");
        self.state.set_model_ready(1, c);
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let req = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let (s, text) = self.send(req).await;
        (
            s,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        self.send(Request::get(path).body(Body::empty()).expect("req"))
            .await
    }
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})
}

#[tokio::test]
async fn requests_go_to_the_model_they_name() {
    let app = two().ready();
    let (s, v) = app.post("/v1/chat/completions", &chat("llama")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["model"], "llama");
    assert_eq!(v["choices"][0]["message"]["content"], "from llama");
    assert_eq!(app.llama.engine.added.load(Ordering::SeqCst), 1);
    assert_eq!(app.qwen.engine.added.load(Ordering::SeqCst), 0);

    let (s, v) = app.post("/v1/chat/completions", &chat("qwen-alias")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["model"], "qwen-alias");
    assert_eq!(v["choices"][0]["message"]["content"], "from qwen");
    assert_eq!(app.qwen.engine.added.load(Ordering::SeqCst), 1);

    // No model: the first one.
    let mut body = chat("x");
    body.as_object_mut().map(|o| o.remove("model"));
    let (s, v) = app.post("/v1/chat/completions", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["model"], "qwen");
    assert_eq!(app.qwen.engine.added.load(Ordering::SeqCst), 2);

    let (s, v) = app
        .post(
            "/v1/completions",
            &json!({"model": "llama", "prompt": "a", "max_tokens": 4}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(app.llama.engine.added.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn models_lists_every_name_with_its_own_context() {
    let app = two().ready();
    let (s, text) = app.get("/v1/models").await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&text).expect("json");
    let cards: Vec<(String, u64, String)> = v["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or("").to_string(),
                c["max_model_len"].as_u64().unwrap_or(0),
                c["root"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        cards,
        [
            ("qwen".into(), 1024, "/models/qwen3".into()),
            ("qwen-alias".into(), 1024, "/models/qwen3".into()),
            ("llama".into(), 64, "/models/llama".into()),
        ]
    );
    let (s, text) = app.get("/v1/models/llama").await;
    assert_eq!(s, StatusCode::OK);
    assert!(text.contains("\"max_model_len\":64"), "{text}");
}

#[tokio::test]
async fn an_unknown_model_is_a_404_listing_the_served_ones() {
    let app = two().ready();
    for path in ["/v1/chat/completions", "/v1/completions", "/tokenize"] {
        let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "prompt": "x"});
        let (s, v) = app.post(path, &body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_error_shape(&v);
        assert_eq!(
            v["error"]["message"],
            "The model `gpt-4o` does not exist. Available models: qwen, qwen-alias, llama"
        );
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
    }
    let (s, text) = app.get("/v1/models/gpt-4o").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        text.contains("Available models: qwen, qwen-alias, llama"),
        "{text}"
    );
    assert_eq!(app.qwen.engine.added.load(Ordering::SeqCst), 0);
    assert_eq!(app.llama.engine.added.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn each_model_has_its_own_limits_and_tokenizer() {
    let app = two().ready();
    let mut body = chat("llama");
    body["max_tokens"] = json!(100);
    let (s, v) = app.post("/v1/chat/completions", &body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("64") && msg.contains("100"), "{msg}");
    // The same request fits the other model.
    body["model"] = json!("qwen");
    let (s, v) = app.post("/v1/chat/completions", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    for (name, max_len) in [("qwen", 1024), ("llama", 64)] {
        let (s, v) = app
            .post(
                "/tokenize",
                &json!({"model": name, "prompt": "hello world"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["max_model_len"], max_len);
        let (s, d) = app
            .post(
                "/detokenize",
                &json!({"model": name, "tokens": v["tokens"]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{d}");
        assert!(
            d["prompt"].as_str().unwrap_or("").contains("hello world"),
            "{d}"
        );
    }
}

#[tokio::test]
async fn health_is_ok_only_when_every_model_is_and_says_which_is_not() {
    let mut app = two();
    app.load_qwen();
    let (s, text) = app.get("/health").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["error"]["message"], "model `llama` is loading");
    assert_eq!(v["models"][0]["status"], "ok");
    assert_eq!(v["models"][1]["status"], "loading");
    // A loaded model serves while another still loads.
    let (s, v) = app.post("/v1/chat/completions", &chat("qwen")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app.post("/v1/chat/completions", &chat("llama")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("`llama` is loading"));

    app.load_llama();
    let (s, text) = app.get("/health").await;
    assert_eq!(s, StatusCode::OK, "{text}");

    let _ = app.llama.engine.dead.set("injected fault".into());
    let (s, text) = app.get("/health").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        text.contains("the engine of model `llama` died: injected fault"),
        "{text}"
    );
    // The other model is unaffected.
    let (s, v) = app.post("/v1/chat/completions", &chat("qwen")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = app.post("/v1/chat/completions", &chat("llama")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn metrics_carry_each_model_name() {
    let app = two().ready();
    app.post("/v1/chat/completions", &chat("llama")).await;
    app.post("/v1/chat/completions", &chat("llama")).await;
    app.post("/v1/chat/completions", &chat("qwen")).await;
    let (s, text) = app.get("/metrics").await;
    assert_eq!(s, StatusCode::OK);
    for needle in [
        "vllm:request_success_total{engine=\"0\",model_name=\"qwen\",finished_reason=\"stop\"} 1",
        "vllm:request_success_total{engine=\"1\",model_name=\"llama\",finished_reason=\"stop\"} 2",
        "vllm:e2e_request_latency_seconds_count{engine=\"1\",model_name=\"llama\"} 2",
        "vllm:num_requests_running{engine=\"1\",model_name=\"llama\"} 0.0",
    ] {
        assert!(text.contains(needle), "missing {needle}\n{text}");
    }
    assert_eq!(text.matches("# TYPE vllm:num_requests_running").count(), 1);
}
