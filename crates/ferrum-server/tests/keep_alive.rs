//! `keep-alive`: an idle model's engine is stopped and the next request starts it again; a
//! request in flight keeps it loaded; a failed reload fails the request with the reason.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{fake_model, FakeEngine};
use ferrum_server::{AppState, Engine, KeepAliveEngine, ServerOptions};
use serde_json::{json, Value};
use tower::ServiceExt;

const KEEP_ALIVE: Duration = Duration::from_millis(150);

struct App {
    router: axum::Router,
    engine: Arc<KeepAliveEngine>,
    fake: Arc<FakeEngine>,
    loader_calls: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

/// A server whose model unloads after [`KEEP_ALIVE`]; reloads fail once `fail_from` loads
/// have been made.
fn app(fail_from: usize) -> App {
    let (fake, mut context, dir) = fake_model(&ferrum_testkit::tiny_qwen3(), 1024, "kept alive");
    let loader_calls = Arc::new(AtomicUsize::new(0));
    let (calls, reload) = (loader_calls.clone(), fake.clone());
    let engine = Arc::new(KeepAliveEngine::start(
        "tiny",
        fake.clone(),
        KEEP_ALIVE,
        Box::new(move || {
            if calls.fetch_add(1, Ordering::SeqCst) + 1 >= fail_from {
                return Err("out of memory while loading the weights".into());
            }
            Ok(reload.clone() as Arc<dyn Engine>)
        }),
    ));
    context.engine = engine.clone();
    let state = AppState::new(ServerOptions::for_model("tiny"));
    state.set_ready(context);
    App {
        router: ferrum_server::build_router(state),
        engine,
        fake,
        loader_calls,
        _dir: dir,
    }
}

async fn chat(app: &App, max_tokens: usize) -> (StatusCode, Value) {
    let body = json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
                      "max_tokens": max_tokens, "ignore_eos": true});
    let req = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("req");
    let resp = app.router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn health(app: &App) -> StatusCode {
    let req = Request::get("/health").body(Body::empty()).expect("req");
    app.router
        .clone()
        .oneshot(req)
        .await
        .expect("resp")
        .status()
}

#[tokio::test]
async fn an_idle_model_unloads_and_the_next_request_loads_it_again() {
    let app = app(usize::MAX);
    let (s, v) = chat(&app, 2).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(app.engine.is_loaded());

    // A request running longer than keep-alive keeps the engine.
    *app.fake.delay.lock().expect("lock") = Duration::from_millis(10);
    let (s, v) = chat(&app, 40).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(app.engine.is_loaded(), "unloaded under a running request");
    *app.fake.delay.lock().expect("lock") = Duration::from_millis(1);

    tokio::time::sleep(KEEP_ALIVE * 3).await;
    assert!(!app.engine.is_loaded(), "still loaded after keep-alive");
    assert_eq!(
        health(&app).await,
        StatusCode::OK,
        "an unloaded model loads on demand"
    );
    assert_eq!(app.loader_calls.load(Ordering::SeqCst), 0);

    let (s, v) = chat(&app, 3).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    assert!(app.engine.is_loaded());
    assert_eq!(app.loader_calls.load(Ordering::SeqCst), 1);
    assert_eq!(app.engine.loads(), 2);
}

#[tokio::test]
async fn concurrent_requests_share_one_reload() {
    let app = app(usize::MAX);
    tokio::time::sleep(KEEP_ALIVE * 3).await;
    assert!(!app.engine.is_loaded());
    let results = futures_util::future::join_all((0..4).map(|_| chat(&app, 2))).await;
    for (s, v) in results {
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    assert_eq!(app.loader_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_reload_fails_the_request_with_the_reason() {
    let app = app(1);
    tokio::time::sleep(KEEP_ALIVE * 3).await;
    assert!(!app.engine.is_loaded());
    let (s, v) = chat(&app, 2).await;
    assert!(s.is_server_error(), "{s} {v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("reloading tiny failed: out of memory"),
        "{msg}"
    );
}
