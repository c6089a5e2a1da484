//! `POST /api/generate`: a prompt, through the model's chat template as the user's turn (with
//! `system` before it), or as-is with `raw: true`.
//!
//! Invariants:
//! - What Ferrum cannot honour is refused with a 400, never ignored: `template` (a Go template;
//!   the model's own chat template is used), `suffix` (fill-in-the-middle), `context` (token
//!   memory of the deprecated API; send the conversation to /api/chat instead), `images`.
//! - An empty prompt only "loads" the model (`done_reason: "load"`); an unload request
//!   (`keep_alive: 0`) is refused, since the server's --keep-alive decides when models stop.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::names::resolve;
use super::reply::{error, now_rfc3339};
use super::run::{admit_request, think_kwargs, Common};
use super::stream::Shape;
use crate::error::ApiError;
use crate::prompt::{encode_chat, encode_text, ChatPrompt};
use crate::protocol::parse::{field_names, read_fields, unknown_keys};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GenerateRequest {
    model: Option<String>,
    prompt: Option<String>,
    suffix: Option<String>,
    system: Option<String>,
    template: Option<String>,
    context: Option<Vec<i64>>,
    stream: Option<bool>,
    raw: Option<bool>,
    format: Option<Value>,
    keep_alive: Option<Value>,
    images: Option<Vec<String>>,
    options: Option<Value>,
    think: Option<Value>,
    truncate: Option<bool>,
    shift: Option<bool>,
    logprobs: Option<bool>,
    top_logprobs: Option<i64>,
    #[serde(rename = "_debug_render_only")]
    debug_render_only: Option<bool>,
}

pub async fn generate(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match handle(state, headers, body).await {
        Ok(r) => r,
        Err(e) => error(e),
    }
}

/// Whether `keep_alive` asks to unload (`0`, `"0"`, `"0s"` …).
fn is_unload(keep_alive: &Option<Value>) -> bool {
    match keep_alive {
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::String(s)) => {
            let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            digits.parse::<f64>().is_ok_and(|v| v == 0.0)
        }
        _ => false,
    }
}

/// The answer to a request without a prompt: the model is loaded (it is, or the request would
/// have failed), or a refusal of the unload that `keep_alive: 0` asks for.
pub fn load_reply(
    keep_alive: &Option<Value>,
    body: impl FnOnce() -> Value,
) -> Result<Response, ApiError> {
    if is_unload(keep_alive) {
        return Err(ApiError::unsupported(
            "keep_alive",
            "unloading a model on request is not supported; the server's --keep-alive decides when an idle model stops",
        ));
    }
    Ok(axum::Json(body()).into_response())
}

fn refuse(on: bool, param: &'static str, message: &'static str) -> Result<(), ApiError> {
    if on {
        Err(ApiError::unsupported(param, message))
    } else {
        Ok(())
    }
}

async fn handle(state: AppState, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let arrival = Instant::now();
    let body = super::body::read(&state, &headers, body).await?;
    let req: GenerateRequest = read_fields(&body)?;
    if let Some(obj) = body.as_object() {
        let unknown = unknown_keys(obj, &[field_names::<GenerateRequest>()]);
        if !unknown.is_empty() {
            tracing::debug!(fields = ?unknown, "ignored unknown request fields");
        }
    }
    let served = resolve(&state, req.model.as_deref())?;
    let model = state.ready_model(served)?;
    let name = req.model.clone().unwrap_or_default();
    let nonempty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    refuse(
        nonempty(&req.template),
        "template",
        "`template` (a Go template) is not supported; the model's chat template is applied, or none with `raw: true`",
    )?;
    refuse(
        nonempty(&req.suffix),
        "suffix",
        "`suffix` (fill-in-the-middle) is not supported",
    )?;
    refuse(
        req.context.as_ref().is_some_and(|c| !c.is_empty()),
        "context",
        "`context` (the deprecated token memory) is not supported; send the conversation to /api/chat",
    )?;
    refuse(
        req.images.as_ref().is_some_and(|i| !i.is_empty()),
        "images",
        "images are not supported; this model takes text only",
    )?;
    refuse(
        req.debug_render_only == Some(true),
        "_debug_render_only",
        "`_debug_render_only` is not supported; POST /tokenize renders a prompt",
    )?;
    let prompt = req.prompt.clone().unwrap_or_default();
    if prompt.is_empty() {
        return load_reply(&req.keep_alive, || {
            json!({"model": name, "created_at": now_rfc3339(), "response": "",
                   "done": true, "done_reason": "load"})
        });
    }
    if req.truncate.is_some() || req.shift.is_some() || req.keep_alive.is_some() {
        tracing::debug!("truncate, shift and keep_alive are decided by the server; ignored");
    }
    let raw = req.raw == Some(true);
    let kwargs = if raw {
        None
    } else {
        think_kwargs(&state, &name, req.think.as_ref())?
    };
    let common = Common {
        stream: req.stream.unwrap_or(true),
        options: req.options,
        format: req.format,
        logprobs: req.logprobs,
        top_logprobs: req.top_logprobs,
    };
    let admitted = admit_request(
        &state,
        served,
        model,
        name,
        Shape::Generate,
        &common,
        arrival,
    )?;
    let encoded = if raw {
        encode_text(model, prompt, true).await?
    } else {
        let mut messages = Vec::new();
        if let Some(system) = req.system.filter(|s| !s.is_empty()) {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": prompt}));
        encode_chat(
            model,
            ChatPrompt {
                messages: Value::Array(messages),
                tools: None,
                documents: None,
                add_generation_prompt: true,
                kwargs,
                add_special_tokens: false,
            },
        )
        .await?
    };
    admitted.run(encoded, None, "prompt").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_zero_is_an_unload() {
        for v in [json!(0), json!("0"), json!("0s"), json!(0.0)] {
            assert!(is_unload(&Some(v.clone())), "{v}");
        }
        for v in [json!(-1), json!("5m"), json!(300)] {
            assert!(!is_unload(&Some(v.clone())), "{v}");
        }
        assert!(!is_unload(&None));
    }
}
