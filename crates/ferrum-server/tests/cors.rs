//! `--allowed-origins` (with `--allowed-methods`, `--allowed-headers`, `--allow-credentials`):
//! CORS headers only when configured, and only for the allowed origins.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::TestApp;

fn preflight(origin: &str) -> Request<Body> {
    Request::builder()
        .method("OPTIONS")
        .uri("/v1/chat/completions")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .body(Body::empty())
        .expect("request")
}

fn allow_origin(h: &HeaderMap) -> Option<&str> {
    h.get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_passes_and_others_get_no_grant() {
    let app = TestApp::with(|o| {
        o.allowed_origins = vec!["https://app.example".into()];
        o.api_keys = vec!["sk-test".into()];
    });
    let (s, h, _) = app.send(preflight("https://app.example")).await;
    assert_eq!(s, StatusCode::OK, "preflight is answered before auth");
    assert_eq!(allow_origin(&h), Some("https://app.example"));
    let methods = h
        .get("access-control-allow-methods")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(methods == "*" || methods.contains("POST"), "{methods}");

    let (_, h, _) = app.send(preflight("https://evil.example")).await;
    assert_eq!(allow_origin(&h), None, "a refused origin gets no grant");

    // A simple request from the allowed origin carries the grant too.
    let req = Request::get("/health")
        .header("origin", "https://app.example")
        .body(Body::empty())
        .expect("req");
    let (s, h, _) = app.send(req).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(allow_origin(&h), Some("https://app.example"));
}

#[tokio::test]
async fn no_cors_headers_without_allowed_origins() {
    let app = TestApp::new();
    let (_, h, _) = app.send(preflight("https://app.example")).await;
    assert_eq!(allow_origin(&h), None);
    assert!(h.get("access-control-allow-methods").is_none());
}

#[tokio::test]
async fn methods_headers_and_credentials_are_applied() {
    let app = TestApp::with(|o| {
        o.allowed_origins = vec!["*".into()];
        o.allowed_methods = vec!["post".into()];
        o.allowed_headers = vec!["Authorization".into(), "Content-Type".into()];
        o.allow_credentials = true;
    });
    let (_, h, _) = app.send(preflight("https://any.example")).await;
    // With credentials, `*` is answered with the origin itself (browsers refuse `*` there).
    assert_eq!(allow_origin(&h), Some("https://any.example"));
    assert_eq!(
        h.get("access-control-allow-credentials")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(
        h.get("access-control-allow-methods")
            .and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    let headers = h
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
}
