//! Operational routes: `/health`, `/v1/models`, `/version`, `/metrics`, `/ping`.
//!
//! Invariant: none of these touch the engine beyond a stats snapshot or a health flag, so they
//! answer in microseconds even under full load or while the model loads.

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AppState;

/// 200 when requests can be served; 503 with the reason while loading, draining or after an
/// engine failure.
pub async fn health(State(state): State<AppState>) -> Response {
    match state.not_ready_reason() {
        None => (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response(),
        Some(reason) => {
            let status = match state.phase() {
                crate::state::Phase::Loading => "loading",
                crate::state::Phase::Draining => "draining",
                _ => "failed",
            };
            let mut body = ApiError::Unavailable(reason).body();
            body["status"] = Value::from(status);
            // Retry-After as for any 503, so probes and SDKs back off politely.
            let mut r = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(1u32),
            );
            r
        }
    }
}

fn model_card(state: &AppState, name: &str) -> Value {
    json!({
        "id": name,
        "object": "model",
        "created": state.created,
        "owned_by": "ferrum",
        "root": state.options.model_source,
        "parent": null,
        "max_model_len": state.model.get().map(|m| m.max_model_len),
        "permission": [],
    })
}

pub async fn models(State(state): State<AppState>) -> Response {
    let data: Vec<Value> = state
        .options
        .served_model_names
        .iter()
        .map(|n| model_card(&state, n))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

pub async fn model(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.check_model_name(Some(&id)) {
        Ok(name) => axum::Json(model_card(&state, &name)).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn version() -> Response {
    axum::Json(json!({"version": env!("CARGO_PKG_VERSION")})).into_response()
}

pub async fn ping(State(state): State<AppState>) -> Response {
    health(State(state)).await
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let stats = state.model.get().map(|m| m.engine.stats());
    let text = state.metrics.render(stats.as_ref());
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

pub async fn not_found(method: Method, uri: Uri) -> Response {
    ApiError::RouteNotFound {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
    .into_response()
}
