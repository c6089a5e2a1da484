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
use crate::registry::ServedModel;
use crate::state::AppState;

/// 200 when every model can serve; 503 with the reason (naming the model that is not ready,
/// when several are served) while loading, draining or after an engine failure.
pub async fn health(State(state): State<AppState>) -> Response {
    let several = state.models.len() > 1;
    let per_model = || -> Value {
        state
            .models
            .iter()
            .map(|m| {
                let status = match m.not_ready_reason(true) {
                    None => json!({"id": m.primary_name(), "status": "ok"}),
                    Some(reason) => json!({
                        "id": m.primary_name(),
                        "status": if m.context.get().is_none() { "loading" } else { "failed" },
                        "reason": reason,
                    }),
                };
                status
            })
            .collect()
    };
    match state.not_ready_reason() {
        None => {
            let mut body = json!({"status": "ok"});
            if several {
                body["models"] = per_model();
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Some(reason) => {
            let status = match state.phase() {
                crate::state::Phase::Loading => "loading",
                crate::state::Phase::Draining => "draining",
                _ => "failed",
            };
            let mut body = ApiError::Unavailable(reason).body();
            body["status"] = Value::from(status);
            if several {
                body["models"] = per_model();
            }
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

fn model_card(state: &AppState, model: &ServedModel, name: &str) -> Value {
    json!({
        "id": name,
        "object": "model",
        "created": state.created,
        "owned_by": "ferrum",
        "root": model.route.source,
        "parent": null,
        "max_model_len": model.context.get().map(|m| m.max_model_len),
        "permission": [],
    })
}

/// Every name of every model, each as its own card (aliases too, as vLLM lists them).
pub async fn models(State(state): State<AppState>) -> Response {
    let data: Vec<Value> = state
        .models
        .iter()
        .flat_map(|m| m.route.names.iter().map(|n| model_card(&state, m, n)))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

pub async fn model(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.resolve_model(Some(&id)) {
        Ok((m, name)) => axum::Json(model_card(&state, m, &name)).into_response(),
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
    let models: Vec<_> = state
        .models
        .iter()
        .map(|m| {
            let stats = m
                .context
                .get()
                .map(|c| c.engine.stats())
                .unwrap_or_default();
            (&m.metrics, stats)
        })
        .collect();
    let text = crate::metrics::render(&models, &state.http_metrics);
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
