//! Request validation, in two steps around tokenization.
//!
//! 1. [`check_sampling`] — before any work: ranges of every sampling value, caps on everything
//!    that multiplies work, vocabulary bounds of token ids, refusals of features that would
//!    otherwise be silently ignored.
//! 2. [`finish_sampling`] — once the prompt length is known: the context-length check and the
//!    default `max_tokens`.
//!
//! Invariants:
//! - Each failure names the field (`param`) and the bound, TGI-style: "`top_p` must be in
//!   (0, 1], got 1.5".
//! - Nothing non-finite reaches the engine: NaN and infinities are refused here.
//! - Fields the request leaves out take the model's defaults (generation_config.json), then
//!   OpenAI's.

use ferrum_types::{SamplingParams, TokenId};
use serde_json::Value;

use crate::error::ApiError;
use crate::limits::*;
use crate::protocol::fields::SamplingFields;
use crate::state::ModelContext;

/// Temperatures below this are greedy (a tiny temperature only amplifies rounding noise).
const GREEDY_BELOW: f64 = 1e-5;

/// A request's generation settings once checked, before the prompt length is known.
#[derive(Debug, Clone)]
pub struct CheckedSampling {
    pub params: SamplingParams,
    /// As given; `None` takes the default in [`finish_sampling`].
    pub max_tokens: Option<usize>,
    pub n: usize,
    pub stop: Vec<String>,
    pub include_stop_str_in_output: bool,
    pub skip_special_tokens: bool,
    pub stream: bool,
    pub include_usage: bool,
    pub priority: i32,
    pub cache_salt: Option<String>,
}

/// What the endpoint adds to the shared fields.
pub struct EndpointSampling {
    /// `max_completion_tokens` (chat) wins over `max_tokens`.
    pub max_tokens_override: Option<(i64, &'static str)>,
    /// Top log-probabilities asked for (chat `top_logprobs` when `logprobs`, completions
    /// `logprobs`).
    pub logprobs: Option<(i64, &'static str)>,
}

fn finite(param: &'static str, v: f64) -> Result<f64, ApiError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(ApiError::invalid(
            param,
            format!("`{param}` must be a finite number"),
        ))
    }
}

fn in_range(param: &'static str, v: f64, lo: f64, hi: f64, lo_open: bool) -> Result<f32, ApiError> {
    let v = finite(param, v)?;
    let below = if lo_open { v <= lo } else { v < lo };
    if below || v > hi {
        let open = if lo_open { "(" } else { "[" };
        return Err(ApiError::invalid(
            param,
            format!("`{param}` must be in {open}{lo}, {hi}], got {v}"),
        ));
    }
    Ok(v as f32)
}

fn count(param: &'static str, v: i64, lo: i64, hi: i64) -> Result<usize, ApiError> {
    if v < lo || v > hi {
        return Err(ApiError::invalid(
            param,
            format!("`{param}` must be between {lo} and {hi}, got {v}"),
        ));
    }
    usize::try_from(v).map_err(|_| ApiError::invalid(param, format!("`{param}` is out of range")))
}

/// A token id from a request, checked against the vocabulary.
pub fn token_id(param: &str, v: i64, vocab_size: usize) -> Result<TokenId, ApiError> {
    if v < 0 || v as u64 >= vocab_size as u64 {
        return Err(ApiError::invalid(
            param,
            format!("token id {v} in `{param}` is outside the vocabulary [0, {vocab_size})"),
        ));
    }
    Ok(v as TokenId)
}

fn refuse_if(on: bool, param: &'static str, message: &str) -> Result<(), ApiError> {
    if on {
        Err(ApiError::unsupported(param, message))
    } else {
        Ok(())
    }
}

/// Step 1: everything that does not need the prompt.
pub fn check_sampling(
    f: &SamplingFields,
    endpoint: EndpointSampling,
    model: &ModelContext,
    max_logprobs: usize,
) -> Result<CheckedSampling, ApiError> {
    refuse_unsupported(f)?;
    let mut p = model.default_sampling.clone();
    if let Some(t) = f.temperature {
        let t = in_range("temperature", t, 0.0, 2.0, false)?;
        p.temperature = if f64::from(t) < GREEDY_BELOW { 0.0 } else { t };
    }
    if let Some(v) = f.top_p {
        p.top_p = in_range("top_p", v, 0.0, 1.0, true)?;
    }
    if let Some(k) = f.top_k {
        if k < -1 || k > i64::from(i32::MAX) {
            return Err(ApiError::invalid(
                "top_k",
                format!("`top_k` must be -1 (off) or at least 0, got {k}"),
            ));
        }
        p.top_k = if k < 0 { 0 } else { k as i32 };
    }
    if let Some(v) = f.min_p {
        p.min_p = in_range("min_p", v, 0.0, 1.0, false)?;
    }
    if let Some(v) = f.repetition_penalty {
        p.repetition_penalty = in_range("repetition_penalty", v, 0.0, 10.0, true)?;
    }
    if let Some(v) = f.presence_penalty {
        p.presence_penalty = in_range("presence_penalty", v, -2.0, 2.0, false)?;
    }
    if let Some(v) = f.frequency_penalty {
        p.frequency_penalty = in_range("frequency_penalty", v, -2.0, 2.0, false)?;
    }
    if let Some(seed) = f.seed {
        // Any 64-bit integer is a seed; negative ones keep their bits.
        p.seed = Some(seed as u64);
    }
    let (max_tokens_value, max_tokens_param) = match endpoint.max_tokens_override {
        Some((v, param)) => (Some(v), param),
        None => (f.max_tokens, "max_tokens"),
    };
    let max_tokens = max_tokens_value
        .map(|v| count(max_tokens_param, v, 1, i64::from(u32::MAX)))
        .transpose()?;
    if let Some(m) = f.min_tokens {
        p.min_tokens = count("min_tokens", m, 0, i64::from(u32::MAX))?;
        if max_tokens.is_some_and(|max| p.min_tokens > max) {
            return Err(ApiError::invalid(
                "min_tokens",
                "`min_tokens` must not exceed `max_tokens`",
            ));
        }
    }
    let n =
        f.n.map(|n| count("n", n, 1, MAX_N as i64))
            .transpose()?
            .unwrap_or(1);
    let stop = check_stop(f)?;
    if let Some(ids) = &f.stop_token_ids {
        if ids.len() > MAX_STOP_TOKEN_IDS {
            return Err(ApiError::invalid(
                "stop_token_ids",
                format!(
                    "at most {MAX_STOP_TOKEN_IDS} stop token ids are accepted, got {}",
                    ids.len()
                ),
            ));
        }
        p.stop_token_ids = ids
            .iter()
            .map(|&id| token_id("stop_token_ids", id, model.vocab_size))
            .collect::<Result<_, _>>()?;
    }
    if let Some(bias) = &f.logit_bias {
        p.logit_bias = check_logit_bias(bias, model.vocab_size)?;
    }
    if let Some((k, param)) = endpoint.logprobs {
        p.logprobs = Some(count(param, k, 0, max_logprobs as i64).map_err(|_| {
            ApiError::invalid(
                param,
                format!("`{param}` must be between 0 and {max_logprobs} (the server's --max-logprobs), got {k}"),
            )
        })?);
    }
    if let Some(v) = f.ignore_eos {
        p.ignore_eos = v;
    }
    let stream = f.stream.unwrap_or(false);
    if f.stream_options.is_some() && !stream {
        return Err(ApiError::invalid(
            "stream_options",
            "`stream_options` is only allowed when `stream` is true",
        ));
    }
    let priority = match f.priority {
        None => 0,
        Some(v) => i32::try_from(v)
            .map_err(|_| ApiError::invalid("priority", "`priority` must fit in 32 bits"))?,
    };
    for (param, value) in [
        ("cache_salt", &f.cache_salt),
        ("user", &f.user),
        ("request_id", &f.request_id),
    ] {
        if value.as_ref().is_some_and(|s| s.len() > MAX_ID_BYTES) {
            return Err(ApiError::invalid(
                param,
                format!("`{param}` is longer than {MAX_ID_BYTES} bytes"),
            ));
        }
    }
    if f.cache_salt.as_deref() == Some("") {
        return Err(ApiError::invalid(
            "cache_salt",
            "`cache_salt` must not be empty",
        ));
    }
    Ok(CheckedSampling {
        params: p,
        max_tokens,
        n,
        stop,
        include_stop_str_in_output: f.include_stop_str_in_output.unwrap_or(false),
        skip_special_tokens: f.skip_special_tokens.unwrap_or(true),
        stream,
        include_usage: stream
            && f.stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
        priority,
        cache_salt: f.cache_salt.clone(),
    })
}

fn check_stop(f: &SamplingFields) -> Result<Vec<String>, ApiError> {
    let stop = f.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    if stop.len() > MAX_STOP_STRINGS {
        return Err(ApiError::invalid(
            "stop",
            format!(
                "at most {MAX_STOP_STRINGS} stop strings are accepted, got {}",
                stop.len()
            ),
        ));
    }
    for s in &stop {
        if s.len() > MAX_STOP_STRING_BYTES {
            return Err(ApiError::invalid(
                "stop",
                format!("a stop string may be at most {MAX_STOP_STRING_BYTES} bytes"),
            ));
        }
    }
    // An empty stop string would match everywhere; clients send it meaning "none".
    Ok(stop.into_iter().filter(|s| !s.is_empty()).collect())
}

fn check_logit_bias(
    bias: &std::collections::BTreeMap<String, f64>,
    vocab_size: usize,
) -> Result<std::collections::HashMap<TokenId, f32>, ApiError> {
    if bias.len() > MAX_LOGIT_BIAS {
        return Err(ApiError::invalid(
            "logit_bias",
            format!(
                "at most {MAX_LOGIT_BIAS} logit_bias entries are accepted, got {}",
                bias.len()
            ),
        ));
    }
    bias.iter()
        .map(|(key, &value)| {
            let id: i64 = key.trim().parse().map_err(|_| {
                ApiError::invalid("logit_bias", format!("logit_bias key {key:?} is not a token id"))
            })?;
            let id = token_id("logit_bias", id, vocab_size)?;
            let v = finite("logit_bias", value)?;
            if v.abs() > MAX_BIAS_VALUE {
                return Err(ApiError::invalid(
                    "logit_bias",
                    format!("logit_bias values must be in [-{MAX_BIAS_VALUE}, {MAX_BIAS_VALUE}], got {v}"),
                ));
            }
            Ok((id, v as f32))
        })
        .collect()
}

fn refuse_unsupported(f: &SamplingFields) -> Result<(), ApiError> {
    if let Some(format) = &f.response_format {
        let kind = format.get("type").and_then(Value::as_str);
        match kind {
            None if format.is_null() => {}
            Some("text") => {}
            Some(k @ ("json_object" | "json_schema")) => {
                return Err(ApiError::unsupported(
                    "response_format",
                    format!("response_format {k:?} needs structured output decoding, which this server does not support yet"),
                ))
            }
            _ => {
                return Err(ApiError::invalid(
                    "response_format",
                    "`response_format.type` must be \"text\", \"json_object\" or \"json_schema\"",
                ))
            }
        }
    }
    for (param, v) in [
        ("guided_json", &f.guided_json),
        ("guided_regex", &f.guided_regex),
        ("guided_choice", &f.guided_choice),
        ("guided_grammar", &f.guided_grammar),
        ("structured_outputs", &f.structured_outputs),
    ] {
        refuse_if(
            v.as_ref().is_some_and(|v| !v.is_null()),
            param,
            "structured output decoding is not supported yet",
        )?;
    }
    refuse_if(
        f.best_of.is_some_and(|b| b > 1),
        "best_of",
        "`best_of` above 1 is not supported; use `n`",
    )?;
    refuse_if(
        f.use_beam_search == Some(true),
        "use_beam_search",
        "beam search is not supported",
    )?;
    refuse_if(
        f.prompt_logprobs.is_some_and(|k| k > 0),
        "prompt_logprobs",
        "prompt log-probabilities are not supported",
    )?;
    refuse_if(
        f.allowed_token_ids.as_ref().is_some_and(|v| !v.is_empty()),
        "allowed_token_ids",
        "`allowed_token_ids` is not supported",
    )?;
    refuse_if(
        f.bad_words.as_ref().is_some_and(|v| !v.is_empty()),
        "bad_words",
        "`bad_words` is not supported",
    )?;
    refuse_if(
        f.truncate_prompt_tokens.is_some(),
        "truncate_prompt_tokens",
        "prompt truncation is not supported",
    )?;
    Ok(())
}

/// Step 2: the prompt length is known. Checks the context and fixes `max_tokens`.
/// `default_max` is the endpoint's default when the request gives none (`None`: the rest of
/// the context, as chat does; `Some(16)` for completions, as vLLM does).
pub fn finish_sampling(
    checked: &CheckedSampling,
    prompt_len: usize,
    model: &ModelContext,
    default_max: Option<usize>,
    prompt_param: &'static str,
) -> Result<SamplingParams, ApiError> {
    let limit = model.max_model_len;
    if prompt_len == 0 {
        return Err(ApiError::invalid(prompt_param, "the prompt is empty"));
    }
    if prompt_len >= limit {
        return Err(ApiError::ContextLength {
            message: format!(
                "This model's maximum context length is {limit} tokens, but the prompt has {prompt_len} tokens, leaving no room for output. Shorten the prompt."
            ),
            param: prompt_param,
        });
    }
    let room = limit - prompt_len;
    let max_tokens = match checked.max_tokens {
        Some(m) if m > room => {
            return Err(ApiError::ContextLength {
                message: format!(
                    "max_tokens is too large: {m}. This model's maximum context length is {limit} tokens and the prompt has {prompt_len} tokens ({m} > {limit} - {prompt_len}). Lower max_tokens to at most {room}."
                ),
                param: "max_tokens",
            })
        }
        Some(m) => m,
        None => {
            let mut m = room;
            if let Some(d) = default_max.or(model.default_max_tokens) {
                m = m.min(d);
            }
            m
        }
    };
    let mut params = checked.params.clone();
    params.max_tokens = max_tokens;
    params.min_tokens = params.min_tokens.min(max_tokens);
    Ok(params)
}
