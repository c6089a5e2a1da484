//! Cross-cutting HTTP layers: header-size limit and HTTP metrics.
//!
//! Invariant: oversized headers are answered with 431 in the OpenAI error shape before any
//! handler runs (hyper's own, larger limit answers without a body).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::limits::MAX_HEADER_BYTES;
use crate::state::AppState;

pub async fn limit_headers(req: Request, next: Next) -> Response {
    let size: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return ApiError::HeadersTooLarge {
            limit: MAX_HEADER_BYTES,
        }
        .into_response();
    }
    next.run(req).await
}

/// Counts responses by route template; for streams, the time is to the response head.
pub async fn http_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| canonical_handler(p.as_str()))
        .unwrap_or("other");
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    state.http_metrics.record_http(
        handler,
        &method,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// Routes answer with and without `/v1`; both count under the `/v1` name.
fn canonical_handler(path: &str) -> &'static str {
    match path.trim_start_matches("/v1") {
        "/chat/completions" => "/v1/chat/completions",
        "/completions" => "/v1/completions",
        "/models" | "/models/{id}" => "/v1/models",
        "/tokenize" => "/tokenize",
        "/detokenize" => "/detokenize",
        "/health" => "/health",
        "/metrics" => "/metrics",
        "/version" => "/version",
        "/ping" => "/ping",
        _ => "other",
    }
}
