//! `POST /v1/chat/completions`.
//!
//! Order of work (cheap checks first, nothing expensive before admission):
//! parse → model name → field checks and caps → admission (429) → template + tokenize on the
//! blocking pool → context check → engine → stream or collect.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use ferrum_config::ToolParserKind;

use crate::body::json_object;
use crate::driver::{Driver, RequestInfo};
use crate::error::ApiError;
use crate::ids::new_id;
use crate::limits::MAX_TEMPLATE_KWARGS;
use crate::output::ChoiceConfig;
use crate::prompt::{encode_chat, ChatPrompt};
use crate::protocol::fields::{ChatFields, SamplingFields};
use crate::protocol::messages::{check_tools, normalize_messages, read_tool_choice, ToolChoice};
use crate::protocol::parse::{field_names, read_fields, unknown_keys};
use crate::respond::respond;
use crate::response::{Kind, Renderer};
use crate::routes::admit;
use crate::state::AppState;
use crate::validate::{check_sampling, finish_sampling, EndpointSampling};

pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn handle(state: AppState, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let arrival = Instant::now();
    let body = json_object(&headers, body, state.options.max_body_bytes).await?;
    let sampling: SamplingFields = read_fields(&body)?;
    let chat: ChatFields = read_fields(&body)?;
    if let Some(obj) = body.as_object() {
        let unknown = unknown_keys(
            obj,
            &[field_names::<SamplingFields>(), field_names::<ChatFields>()],
        );
        if !unknown.is_empty() {
            tracing::debug!(fields = ?unknown, "ignored unknown request fields");
        }
    }
    let (served, model_name) = state.resolve_model(sampling.model.as_deref())?;
    let model = state.ready_model(served)?;

    if chat.echo == Some(true) {
        return Err(ApiError::unsupported(
            "echo",
            "`echo` is not supported on chat completions",
        ));
    }
    if chat.chat_template.is_some() {
        return Err(ApiError::unsupported(
            "chat_template",
            "templates sent with a request are refused (they run code on the server); start the server with --chat-template",
        ));
    }
    if chat.continue_final_message == Some(true) {
        return Err(ApiError::unsupported(
            "continue_final_message",
            "`continue_final_message` is not supported",
        ));
    }
    if chat
        .chat_template_kwargs
        .as_ref()
        .is_some_and(|k| k.len() > MAX_TEMPLATE_KWARGS)
    {
        return Err(ApiError::invalid(
            "chat_template_kwargs",
            format!("at most {MAX_TEMPLATE_KWARGS} chat_template_kwargs are accepted"),
        ));
    }
    let messages = normalize_messages(chat.messages.as_ref())?;
    let tools = check_tools(chat.tools.as_ref())?;
    let tool_choice = read_tool_choice(chat.tool_choice.as_ref(), tools.is_some())?;
    let tool_parser: Option<ToolParserKind> = match (tools.is_some(), tool_choice) {
        (true, ToolChoice::Auto) => match (state.options.auto_tool_choice, state.options.tool_parser) {
            (true, Some(kind)) => Some(kind),
            _ => {
                return Err(ApiError::invalid(
                    "tool_choice",
                    "\"auto\" tool choice needs the server started with --enable-auto-tool-choice and --tool-call-parser",
                ))
            }
        },
        _ => None,
    };
    let max_lp = state.options.max_logprobs as i64;
    if let Some(k) = chat.top_logprobs.filter(|k| !(0..=max_lp).contains(k)) {
        return Err(ApiError::invalid(
            "top_logprobs",
            format!("`top_logprobs` must be between 0 and {max_lp} (the server's --max-logprobs), got {k}"),
        ));
    }
    let logprobs = match (chat.logprobs, chat.top_logprobs) {
        (Some(true), k) => Some((k.unwrap_or(0), "top_logprobs")),
        (_, Some(k)) if k > 0 => {
            return Err(ApiError::invalid(
                "top_logprobs",
                "`top_logprobs` needs `logprobs: true`",
            ))
        }
        _ => None,
    };
    let checked = check_sampling(
        &sampling,
        EndpointSampling {
            max_tokens_override: chat
                .max_completion_tokens
                .map(|v| (v, "max_completion_tokens")),
            logprobs,
        },
        model,
        state.options.max_logprobs,
    )?;
    let permit = admit(&state, checked.n)?;

    let encoded = encode_chat(
        model,
        ChatPrompt {
            messages,
            tools,
            documents: chat.documents.clone(),
            add_generation_prompt: chat.add_generation_prompt.unwrap_or(true),
            kwargs: chat.chat_template_kwargs.clone(),
            add_special_tokens: sampling.add_special_tokens.unwrap_or(false),
        },
    )
    .await?;
    let params = finish_sampling(&checked, encoded.ids.len(), model, None, "messages")?;
    let want_logprobs = params.logprobs.is_some();
    let request_id = new_id("chatcmpl-");
    let config = ChoiceConfig {
        stop: checked.stop.clone(),
        include_stop_str_in_output: checked.include_stop_str_in_output,
        skip_special_tokens: checked.skip_special_tokens,
        reasoning: state.options.reasoning_parser,
        tools: tool_parser,
        want_logprobs,
        stop_token_ids: checked.params.stop_token_ids.clone(),
    };
    let info = RequestInfo {
        request_id: request_id.clone(),
        endpoint: "chat",
        model: model_name.clone(),
        engine: served.index,
        stream: checked.stream,
        arrival,
        prompt_text: state.options.log_outputs.then(|| encoded.text.clone()),
    };
    let driver = Driver::start(
        &state,
        model,
        permit,
        std::slice::from_ref(&encoded.ids),
        std::slice::from_ref(&params),
        checked.n,
        &config,
        checked.priority,
        checked.cache_salt.as_deref(),
        info,
    )?;
    let renderer = Renderer {
        kind: Kind::Chat,
        id: request_id,
        created: unix_now(),
        model: model_name,
        include_usage: checked.include_usage,
        reasoning: state.options.reasoning_parser.is_some(),
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
