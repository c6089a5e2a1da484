//! `POST /tokenize` and `POST /detokenize`, shaped like vLLM's.
//!
//! `/tokenize` takes a `prompt`, or chat `messages` (with `tools`, `add_generation_prompt`,
//! `chat_template_kwargs`) rendered through the chat template exactly as a chat request would
//! be, so clients can count a conversation's tokens before sending it.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::body::json_object;
use crate::error::ApiError;
use crate::limits::MAX_TEMPLATE_KWARGS;
use crate::prompt::{check_ids, decode_ids, encode_chat, encode_text, ChatPrompt};
use crate::protocol::fields::{DetokenizeFields, TokenizeFields};
use crate::protocol::messages::{check_tools, normalize_messages};
use crate::protocol::parse::read_fields;
use crate::state::AppState;

pub async fn tokenize(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match handle_tokenize(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

pub async fn detokenize(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match handle_detokenize(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle_tokenize(
    state: AppState,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = json_object(&headers, body, state.options.max_body_bytes).await?;
    let f: TokenizeFields = read_fields(&body)?;
    let (served, _) = state.resolve_model(f.model.as_deref())?;
    let model = state.ready_model(served)?;
    let encoded = match (&f.prompt, &f.messages) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either `prompt` or `messages`, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "prompt",
                "`prompt` or `messages` is required",
            ))
        }
        (Some(prompt), None) => {
            encode_text(model, prompt.clone(), f.add_special_tokens.unwrap_or(true)).await?
        }
        (None, Some(messages)) => {
            if f.chat_template_kwargs
                .as_ref()
                .is_some_and(|k| k.len() > MAX_TEMPLATE_KWARGS)
            {
                return Err(ApiError::invalid(
                    "chat_template_kwargs",
                    "too many chat_template_kwargs",
                ));
            }
            if f.continue_final_message == Some(true) {
                return Err(ApiError::unsupported(
                    "continue_final_message",
                    "`continue_final_message` is not supported",
                ));
            }
            let chat = ChatPrompt {
                messages: normalize_messages(Some(messages))?,
                tools: check_tools(f.tools.as_ref())?,
                documents: None,
                add_generation_prompt: f.add_generation_prompt.unwrap_or(true),
                kwargs: f.chat_template_kwargs.clone(),
                add_special_tokens: f.add_special_tokens.unwrap_or(false),
            };
            encode_chat(model, chat).await?
        }
    };
    let mut out = json!({
        "count": encoded.ids.len(),
        "max_model_len": model.max_model_len,
        "tokens": encoded.ids,
    });
    if f.return_token_strs == Some(true) {
        let strs: Vec<String> = encoded
            .ids
            .iter()
            .map(|&id| model.tokenizer.id_to_token(id).unwrap_or_default())
            .collect();
        out["token_strs"] = json!(strs);
    }
    Ok(axum::Json(out).into_response())
}

async fn handle_detokenize(
    state: AppState,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = json_object(&headers, body, state.options.max_body_bytes).await?;
    let f: DetokenizeFields = read_fields(&body)?;
    let (served, _) = state.resolve_model(f.model.as_deref())?;
    let model = state.ready_model(served)?;
    let tokens = f
        .tokens
        .ok_or_else(|| ApiError::invalid("tokens", "`tokens` is required"))?;
    let ids = check_ids("tokens", &tokens, model.vocab_size)?;
    let text = decode_ids(model, ids, false).await?;
    Ok(axum::Json(json!({"prompt": text})).into_response())
}
