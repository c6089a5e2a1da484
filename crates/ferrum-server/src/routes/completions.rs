//! `POST /v1/completions`: a prompt as text, a list of texts, token ids or lists of token ids.
//!
//! Invariants:
//! - Every prompt form is checked before any tokenization: shapes, the cap on prompts, token
//!   ids against the vocabulary.
//! - `echo` and `suffix` are refused with a 400 rather than ignored.
//! - Choice `p * n + i` is choice `i` of prompt `p`, as in vLLM.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use ferrum_types::TokenId;
use serde_json::Value;

use crate::body::json_object;
use crate::driver::{Driver, RequestInfo};
use crate::error::ApiError;
use crate::ids::new_id;
use crate::limits::MAX_PROMPTS;
use crate::output::ChoiceConfig;
use crate::prompt::{check_ids, encode_text};
use crate::protocol::fields::{CompletionFields, SamplingFields};
use crate::protocol::parse::{field_names, read_fields, unknown_keys};
use crate::respond::respond;
use crate::response::{Kind, Renderer};
use crate::routes::admit;
use crate::routes::chat::unix_now;
use crate::state::AppState;
use crate::validate::{check_sampling, finish_sampling, EndpointSampling};

/// vLLM's default `max_tokens` for completions.
const DEFAULT_MAX_TOKENS: usize = 16;

pub async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// One prompt as given.
pub enum PromptInput {
    Text(String),
    Ids(Vec<i64>),
}

/// Reads `prompt` in its four forms.
pub fn read_prompts(prompt: Option<&Value>) -> Result<Vec<PromptInput>, ApiError> {
    let bad = || {
        ApiError::invalid("prompt", "`prompt` must be a string, a list of strings, a list of token ids or a list of token-id lists")
    };
    let ids = |v: &Vec<Value>| {
        v.iter()
            .map(|x| x.as_i64().ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
    };
    let prompts = match prompt {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("prompt", "`prompt` is required"))
        }
        Some(Value::String(s)) => vec![PromptInput::Text(s.clone())],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(ApiError::invalid("prompt", "`prompt` must not be empty"))
        }
        Some(Value::Array(items)) => match &items[0] {
            Value::String(_) => items
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(|s| PromptInput::Text(s.to_string()))
                        .ok_or_else(bad)
                })
                .collect::<Result<_, _>>()?,
            Value::Number(_) => vec![PromptInput::Ids(ids(items)?)],
            Value::Array(_) => items
                .iter()
                .map(|x| match x {
                    Value::Array(inner) => ids(inner).map(PromptInput::Ids),
                    _ => Err(bad()),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(bad()),
        },
        Some(_) => return Err(bad()),
    };
    if prompts.len() > MAX_PROMPTS {
        return Err(ApiError::invalid(
            "prompt",
            format!(
                "at most {MAX_PROMPTS} prompts are accepted, got {}",
                prompts.len()
            ),
        ));
    }
    Ok(prompts)
}

async fn handle(state: AppState, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let arrival = Instant::now();
    let body = json_object(&headers, body, state.options.max_body_bytes).await?;
    let sampling: SamplingFields = read_fields(&body)?;
    let fields: CompletionFields = read_fields(&body)?;
    if let Some(obj) = body.as_object() {
        let unknown = unknown_keys(
            obj,
            &[
                field_names::<SamplingFields>(),
                field_names::<CompletionFields>(),
            ],
        );
        if !unknown.is_empty() {
            tracing::debug!(fields = ?unknown, "ignored unknown request fields");
        }
    }
    let (served, model_name) = state.resolve_model(sampling.model.as_deref())?;
    let model = state.ready_model(served)?;
    if fields.echo == Some(true) {
        return Err(ApiError::unsupported(
            "echo",
            "`echo` is not supported; the response holds only the completion",
        ));
    }
    if fields.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::unsupported(
            "suffix",
            "`suffix` (fill-in-the-middle) is not supported",
        ));
    }
    let inputs = read_prompts(fields.prompt.as_ref())?;
    // Token-id prompts are checked now, before any work.
    for (i, p) in inputs.iter().enumerate() {
        if let PromptInput::Ids(ids) = p {
            let param = if inputs.len() == 1 {
                "prompt".to_string()
            } else {
                format!("prompt[{i}]")
            };
            check_ids(&param, ids, model.vocab_size)?;
        }
    }
    let checked = check_sampling(
        &sampling,
        EndpointSampling {
            max_tokens_override: None,
            logprobs: fields.logprobs.map(|k| (k, "logprobs")),
        },
        model,
        state.options.max_logprobs,
    )?;
    let permit = admit(&state, checked.n * inputs.len())?;

    let add_special = sampling.add_special_tokens.unwrap_or(true);
    let mut prompts: Vec<Vec<TokenId>> = Vec::with_capacity(inputs.len());
    let mut texts = Vec::new();
    for p in inputs {
        match p {
            PromptInput::Text(t) => {
                let encoded = encode_text(model, t, add_special).await?;
                texts.push(encoded.text);
                prompts.push(encoded.ids);
            }
            PromptInput::Ids(ids) => prompts.push(check_ids("prompt", &ids, model.vocab_size)?),
        }
    }
    let params = prompts
        .iter()
        .map(|p| finish_sampling(&checked, p.len(), model, Some(DEFAULT_MAX_TOKENS), "prompt"))
        .collect::<Result<Vec<_>, _>>()?;
    let want_logprobs = checked.params.logprobs.is_some();
    let request_id = new_id("cmpl-");
    let config = ChoiceConfig {
        stop: checked.stop.clone(),
        include_stop_str_in_output: checked.include_stop_str_in_output,
        skip_special_tokens: checked.skip_special_tokens,
        reasoning: None,
        tools: None,
        want_logprobs,
        stop_token_ids: checked.params.stop_token_ids.clone(),
    };
    let info = RequestInfo {
        request_id: request_id.clone(),
        endpoint: "completions",
        model: model_name.clone(),
        engine: served.index,
        stream: checked.stream,
        arrival,
        prompt_text: state.options.log_outputs.then(|| texts.join("\n---\n")),
    };
    let driver = Driver::start(
        &state,
        model,
        permit,
        &prompts,
        &params,
        checked.n,
        &config,
        checked.priority,
        checked.cache_salt.as_deref(),
        info,
    )?;
    let renderer = Renderer {
        kind: Kind::Completion,
        id: request_id,
        created: unix_now(),
        model: model_name,
        include_usage: checked.include_usage,
        reasoning: false,
    };
    Ok(respond(
        driver,
        renderer,
        checked.stream,
        state.options.keep_alive,
        want_logprobs,
    )
    .await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_four_prompt_forms() {
        assert_eq!(
            read_prompts(Some(&json!("hi"))).map(|p| p.len()).ok(),
            Some(1)
        );
        assert_eq!(
            read_prompts(Some(&json!(["a", "b"]))).map(|p| p.len()).ok(),
            Some(2)
        );
        assert_eq!(
            read_prompts(Some(&json!([1, 2, 3]))).map(|p| p.len()).ok(),
            Some(1)
        );
        assert_eq!(
            read_prompts(Some(&json!([[1], [2, 3]])))
                .map(|p| p.len())
                .ok(),
            Some(2)
        );
        for bad in [
            json!([]),
            json!(["a", 1]),
            json!([1, "a"]),
            json!({"a": 1}),
            json!([[1], "x"]),
            json!([1.5]),
        ] {
            assert!(read_prompts(Some(&bad)).is_err(), "{bad}");
        }
    }
}
