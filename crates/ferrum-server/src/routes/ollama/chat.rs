//! `POST /api/chat`: Ollama's chat, through the model's chat template.
//!
//! Invariants:
//! - Messages are translated to the shape the OpenAI route's checks and the template expect:
//!   roles lower-cased, `tool_name` → `name`, `thinking` → `reasoning_content`; tool-call
//!   `arguments` stay objects. Images are refused (no vision input).
//! - An empty or absent `messages` only "loads" the model, as in Ollama: `done_reason: "load"`.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::names::resolve;
use super::reply::{error, now_rfc3339};
use super::run::{admit_request, think_kwargs, Common};
use super::stream::Shape;
use crate::error::ApiError;
use crate::prompt::{encode_chat, ChatPrompt};
use crate::protocol::messages::{check_tools, normalize_messages};
use crate::protocol::parse::{field_names, read_fields, unknown_keys};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatRequest {
    model: Option<String>,
    messages: Option<Value>,
    tools: Option<Value>,
    format: Option<Value>,
    options: Option<Value>,
    stream: Option<bool>,
    keep_alive: Option<Value>,
    think: Option<Value>,
    truncate: Option<bool>,
    shift: Option<bool>,
    logprobs: Option<bool>,
    top_logprobs: Option<i64>,
}

pub async fn chat(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match handle(state, headers, body).await {
        Ok(r) => r,
        Err(e) => error(e),
    }
}

/// Ollama's messages in the shape [`normalize_messages`] and templates read.
fn translate_messages(messages: &[Value]) -> Result<Value, ApiError> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let Value::Object(fields) = m else {
                return Err(ApiError::invalid(
                    format!("messages[{i}]"),
                    format!("messages[{i}] must be an object"),
                ));
            };
            let mut out: Map<String, Value> = fields.clone();
            if let Some(Value::String(role)) = fields.get("role") {
                out.insert("role".into(), Value::String(role.to_lowercase()));
            }
            if fields
                .get("images")
                .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            {
                return Err(ApiError::unsupported(
                    format!("messages[{i}].images"),
                    "images are not supported; this model takes text only",
                ));
            }
            out.remove("images");
            if let Some(name) = out.remove("tool_name") {
                out.entry("name").or_insert(name);
            }
            if let Some(thinking) = out.remove("thinking") {
                out.entry("reasoning_content").or_insert(thinking);
            }
            Ok(Value::Object(out))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

async fn handle(state: AppState, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let arrival = Instant::now();
    let body = super::body::read(&state, &headers, body).await?;
    let req: ChatRequest = read_fields(&body)?;
    if let Some(obj) = body.as_object() {
        let unknown = unknown_keys(obj, &[field_names::<ChatRequest>()]);
        if !unknown.is_empty() {
            tracing::debug!(fields = ?unknown, "ignored unknown request fields");
        }
    }
    let served = resolve(&state, req.model.as_deref())?;
    let model = state.ready_model(served)?;
    let name = req.model.clone().unwrap_or_default();
    let messages = match &req.messages {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                "messages",
                "`messages` must be a list of message objects",
            ))
        }
    };
    if messages.is_empty() {
        return super::generate::load_reply(&req.keep_alive, || {
            json!({"model": name, "created_at": now_rfc3339(),
                   "message": {"role": "assistant", "content": ""},
                   "done": true, "done_reason": "load"})
        });
    }
    if req.truncate.is_some() || req.shift.is_some() || req.keep_alive.is_some() {
        tracing::debug!("truncate, shift and keep_alive are decided by the server; ignored");
    }
    let messages = normalize_messages(Some(&translate_messages(&messages)?))?;
    let tools = check_tools(req.tools.as_ref())?;
    let tool_parser = match tools {
        None => None,
        Some(_) => match (state.options.auto_tool_choice, state.options.tool_parser) {
            (true, Some(kind)) => Some(kind),
            _ => {
                return Err(ApiError::invalid(
                    "tools",
                    "tools need the server started with --enable-auto-tool-choice and --tool-call-parser",
                ))
            }
        },
    };
    let kwargs = think_kwargs(&state, &name, req.think.as_ref())?;
    let common = Common {
        stream: req.stream.unwrap_or(true),
        options: req.options,
        format: req.format,
        logprobs: req.logprobs,
        top_logprobs: req.top_logprobs,
    };
    let admitted = admit_request(&state, served, model, name, Shape::Chat, &common, arrival)?;
    let encoded = encode_chat(
        model,
        ChatPrompt {
            messages,
            tools,
            documents: None,
            add_generation_prompt: true,
            kwargs,
            add_special_tokens: false,
        },
    )
    .await?;
    admitted.run(encoded, tool_parser, "messages").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_take_the_template_shape() {
        let out = translate_messages(&[
            json!({"role": "User", "content": "hi"}),
            json!({"role": "assistant", "content": "", "thinking": "hmm",
                   "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]}),
            json!({"role": "tool", "content": "42", "tool_name": "f", "images": []}),
        ])
        .expect("valid");
        assert_eq!(out[0]["role"], "user");
        assert_eq!(out[1]["reasoning_content"], "hmm");
        assert_eq!(out[1]["tool_calls"][0]["function"]["arguments"]["x"], 1);
        assert_eq!(out[2]["name"], "f");
        assert!(out[2].get("images").is_none());
        assert!(
            translate_messages(&[json!({"role": "user", "content": "x", "images": ["aGk="]})])
                .is_err()
        );
    }
}
