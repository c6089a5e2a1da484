//! The part of `/api/chat` and `/api/generate` after the prompt: the same validation,
//! admission, engine driver and output pipeline as the OpenAI routes, answered by
//! [`super::stream`] in Ollama's shapes.
//!
//! Order of work, as in the OpenAI routes (cheap checks first, nothing expensive before
//! admission): options → `check_sampling` → admission (429) → the caller renders and
//! tokenizes → `finish_sampling` (context check) → engine.

use std::time::Instant;

use axum::response::Response;
use ferrum_config::ToolParserKind;
use serde_json::{Map, Value};
use tokio::sync::OwnedSemaphorePermit;

use super::options::{self, Options};
use super::stream::{respond, Frame, Shape};
use crate::driver::{Driver, RequestInfo};
use crate::error::ApiError;
use crate::ids::new_id;
use crate::output::ChoiceConfig;
use crate::prompt::Encoded;
use crate::registry::ServedModel;
use crate::routes::admit;
use crate::state::{AppState, ModelContext};
use crate::validate::{check_sampling, finish_sampling, CheckedSampling, EndpointSampling};

/// Request fields shared by chat and generate, beyond the prompt.
pub struct Common {
    pub stream: bool,
    pub options: Option<Value>,
    pub format: Option<Value>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<i64>,
}

/// A request checked and admitted, waiting for its prompt.
pub struct Admitted<'a> {
    pub state: AppState,
    pub served: &'a ServedModel,
    pub model: &'a ModelContext,
    /// The name as the request gave it (echoed in every response object).
    pub name: String,
    pub shape: Shape,
    pub arrival: Instant,
    checked: CheckedSampling,
    permit: OwnedSemaphorePermit,
}

/// Refuses `format` (structured output): answering free text to a client that asked for JSON
/// would break it later, in a harder place.
fn check_format(format: Option<&Value>) -> Result<(), ApiError> {
    match format {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s.is_empty() => Ok(()),
        Some(_) => Err(ApiError::unsupported(
            "format",
            "`format` (JSON mode or a JSON schema) needs structured output decoding, which this server does not support yet",
        )),
    }
}

/// The template arguments `think` asks for; a reasoning request to a server without a
/// reasoning parser is refused, as Ollama refuses it for models without thinking.
pub fn think_kwargs(
    state: &AppState,
    name: &str,
    think: Option<&Value>,
) -> Result<Option<Map<String, Value>>, ApiError> {
    let (on, effort) = match think {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Bool(b)) => (*b, None),
        Some(Value::String(level))
            if ["low", "medium", "high", "max"].contains(&level.as_str()) =>
        {
            (true, Some(level.clone()))
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "think",
                "`think` must be true, false, \"low\", \"medium\", \"high\" or \"max\"",
            ))
        }
    };
    if on && state.options.reasoning_parser.is_none() {
        return Err(ApiError::invalid(
            "think",
            format!(
                "\"{name}\" does not support thinking (start the server with --reasoning-parser)"
            ),
        ));
    }
    let mut kwargs = Map::new();
    kwargs.insert("enable_thinking".into(), Value::Bool(on));
    if let Some(effort) = effort {
        kwargs.insert("reasoning_effort".into(), Value::String(effort));
    }
    Ok(Some(kwargs))
}

/// Checks everything that does not need the prompt and takes an admission permit.
pub fn admit_request<'a>(
    state: &AppState,
    served: &'a ServedModel,
    model: &'a ModelContext,
    name: String,
    shape: Shape,
    common: &Common,
    arrival: Instant,
) -> Result<Admitted<'a>, ApiError> {
    check_format(common.format.as_ref())?;
    let Options {
        mut sampling,
        num_ctx,
    } = options::read(common.options.as_ref())?;
    options::check_num_ctx(num_ctx, model.max_model_len)?;
    sampling.stream = Some(common.stream);
    let logprobs = match (common.logprobs, common.top_logprobs) {
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
            max_tokens_override: None,
            logprobs,
        },
        model,
        state.options.max_logprobs,
    )?;
    let permit = admit(state, checked.n)?;
    Ok(Admitted {
        state: state.clone(),
        served,
        model,
        name,
        shape,
        arrival,
        checked,
        permit,
    })
}

impl Admitted<'_> {
    /// Hands the prompt to the engine and answers (NDJSON or one object).
    pub async fn run(
        self,
        encoded: Encoded,
        tools: Option<ToolParserKind>,
        prompt_param: &'static str,
    ) -> Result<Response, ApiError> {
        let params = finish_sampling(
            &self.checked,
            encoded.ids.len(),
            self.model,
            None,
            prompt_param,
        )?;
        let want_logprobs = params.logprobs.is_some();
        let config = ChoiceConfig {
            stop: self.checked.stop.clone(),
            include_stop_str_in_output: self.checked.include_stop_str_in_output,
            skip_special_tokens: self.checked.skip_special_tokens,
            reasoning: self.state.options.reasoning_parser,
            tools,
            want_logprobs,
            stop_token_ids: self.checked.params.stop_token_ids.clone(),
        };
        let info = RequestInfo {
            request_id: new_id("ollama-"),
            endpoint: match self.shape {
                Shape::Chat => "api_chat",
                Shape::Generate => "api_generate",
            },
            model: self.name.clone(),
            engine: self.served.index,
            stream: self.checked.stream,
            arrival: self.arrival,
            prompt_text: self.state.options.log_outputs.then(|| encoded.text.clone()),
        };
        let driver = Driver::start(
            &self.state,
            self.model,
            self.permit,
            std::slice::from_ref(&encoded.ids),
            std::slice::from_ref(&params),
            1,
            &config,
            self.checked.priority,
            None,
            info,
        )?;
        let frame = Frame {
            shape: self.shape,
            model: self.name,
            arrival: self.arrival,
            want_logprobs,
        };
        Ok(respond(driver, frame, self.checked.stream).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn format_is_refused_unless_empty() {
        assert!(check_format(None).is_ok());
        assert!(check_format(Some(&json!(""))).is_ok());
        assert!(check_format(Some(&json!("json"))).is_err());
        assert!(check_format(Some(&json!({"type": "object"}))).is_err());
    }
}
