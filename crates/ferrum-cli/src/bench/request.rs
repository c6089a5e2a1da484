//! One streamed request and its timings, as vLLM's `async_request_openai_completions` and
//! `async_request_openai_chat_completions` measure them.
//!
//! Invariants:
//! - The clock starts just before the request is sent; TTFT is taken at the first SSE event whose
//!   `choices` is a non-empty list (even with empty text), each later such event adds one ITL gap,
//!   and E2EL is the time of the last one. Usage-only events are not tokens.
//! - One deviation from vLLM's chat client: the opening `{"role": "assistant"}` delta with no
//!   content is not a token. vLLM's server sends it with the first token, but other servers
//!   (ferrum serve among them) send it before prefill, where it would make TTFT meaningless.
//! - Output tokens come from the last `usage.completion_tokens` the server sent (we always ask with
//!   `stream_options.include_usage`); without it the caller counts them another way
//!   (`output_tokens` stays 0 and `token_chunks` says how many token events came).
//! - Success needs HTTP 200 and at least one token event; anything else keeps the first error.
//! - Only standard OpenAI fields are sent, plus `ignore_eos` when asked for.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde_json::{json, Value};

use super::client::Client;
use super::metrics::RequestOutcome;
use super::sse::SseSplitter;

/// Which OpenAI API the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Completions,
    Chat,
}

/// What a prompt is sent as.
#[derive(Debug, Clone)]
pub enum Prompt {
    Ids(Vec<u32>),
    Text(String),
}

/// Settings shared by every request of a run.
#[derive(Debug, Clone)]
pub struct RequestSettings {
    pub api: Api,
    pub endpoint: String,
    pub model: String,
    pub ignore_eos: bool,
    pub temperature: Option<f64>,
}

/// The JSON body for one request.
pub fn payload(s: &RequestSettings, prompt: &Prompt, max_tokens: usize) -> Value {
    let mut body = match (s.api, prompt) {
        (Api::Completions, Prompt::Ids(ids)) => json!({ "prompt": ids, "max_tokens": max_tokens }),
        (Api::Completions, Prompt::Text(t)) => json!({ "prompt": t, "max_tokens": max_tokens }),
        (Api::Chat, Prompt::Text(t)) => json!({
            "messages": [{ "role": "user", "content": t }],
            "max_completion_tokens": max_tokens,
        }),
        // The caller turns ids into text for chat; a list of ids is no message content.
        (Api::Chat, Prompt::Ids(ids)) => json!({
            "messages": [{ "role": "user", "content": format!("{ids:?}") }],
            "max_completion_tokens": max_tokens,
        }),
    };
    body["model"] = json!(s.model);
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    if s.ignore_eos {
        body["ignore_eos"] = json!(true);
    }
    if let Some(t) = s.temperature {
        body["temperature"] = json!(t);
    }
    body
}

/// The clock of `RequestOutcome::start_time`: first use in this process.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// How many characters of an error body are kept.
const ERROR_BODY_LIMIT: usize = 500;

/// Sends one request and measures it; never fails, errors land in the outcome.
pub async fn send(
    client: &Arc<Client>,
    s: &RequestSettings,
    prompt: &Prompt,
    prompt_len: usize,
    max_tokens: usize,
    request_id: &str,
) -> RequestOutcome {
    let mut out = RequestOutcome {
        prompt_len,
        ..Default::default()
    };
    let body = match serde_json::to_vec(&payload(s, prompt, max_tokens)) {
        Ok(b) => b,
        Err(e) => {
            out.error = format!("encoding the request: {e}");
            return out;
        }
    };
    let st = Instant::now();
    out.start_time = (st - *EPOCH.get_or_init(Instant::now)).as_secs_f64();
    if let Err(e) = stream(client, s, body, request_id, st, &mut out).await {
        out.success = false;
        if out.error.is_empty() {
            out.error = format!("{e:#}");
        }
        return out;
    }
    if out.token_chunks == 0 && out.error.is_empty() {
        out.error =
            "Never received a valid chunk to calculate TTFT. This response will be marked as failed!"
                .into();
    }
    out.success = out.token_chunks > 0 && out.error.is_empty();
    out
}

async fn stream(
    client: &Arc<Client>,
    s: &RequestSettings,
    body: Vec<u8>,
    request_id: &str,
    st: Instant,
    out: &mut RequestOutcome,
) -> anyhow::Result<()> {
    let mut resp = client
        .request(
            "POST",
            &s.endpoint,
            Some(body),
            &[
                ("x-request-id", request_id),
                ("accept", "text/event-stream"),
            ],
        )
        .await?;
    if resp.status != 200 {
        let text = resp.text(ERROR_BODY_LIMIT).await.unwrap_or_default();
        out.error = format!("HTTP {}: {}", resp.status, error_message(&text));
        return Ok(());
    }
    let mut sse = SseSplitter::default();
    let mut last = st;
    while let Some(bytes) = resp.chunk().await? {
        for data in sse.push(&bytes) {
            if data == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(&data)
                .map_err(|e| anyhow::anyhow!("invalid JSON in the stream ({e}): {data}"))?;
            if let Some(e) = v.get("error") {
                out.error = format!("error event in the stream: {e}");
                continue;
            }
            if let Some(usage) = v.get("usage").filter(|u| !u.is_null()) {
                if let Some(n) = usage.get("completion_tokens").and_then(Value::as_u64) {
                    out.output_tokens = n as usize;
                }
                if let Some(n) = usage.get("prompt_tokens").and_then(Value::as_u64) {
                    out.prompt_len = n as usize;
                }
            }
            let Some(choice) = v
                .get("choices")
                .and_then(Value::as_array)
                .and_then(|c| c.first())
            else {
                continue;
            };
            if s.api == Api::Chat && is_role_only(choice) {
                continue;
            }
            let now = Instant::now();
            if out.token_chunks == 0 {
                out.ttft = (now - st).as_secs_f64();
            } else {
                out.itl.push((now - last).as_secs_f64());
            }
            last = now;
            out.token_chunks += 1;
            let text = match s.api {
                Api::Completions => choice.get("text"),
                Api::Chat => choice.get("delta").and_then(|d| {
                    d.get("content")
                        .filter(|c| !c.is_null())
                        .or_else(|| d.get("reasoning_content"))
                }),
            };
            if let Some(t) = text.and_then(Value::as_str) {
                out.generated_text.push_str(t);
            }
        }
    }
    out.latency = (last - st).as_secs_f64();
    Ok(())
}

/// A chat choice that only announces the assistant role: no text, no tool call, no finish.
fn is_role_only(choice: &Value) -> bool {
    let Some(delta) = choice.get("delta") else {
        return false;
    };
    let empty = |k: &str| {
        delta
            .get(k)
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
    };
    delta.get("role").is_some()
        && empty("content")
        && empty("reasoning_content")
        && delta.get("tool_calls").is_none()
        && choice.get("finish_reason").is_none_or(Value::is_null)
}

/// The `error.message` of an OpenAI error body, else the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(api: Api) -> RequestSettings {
        RequestSettings {
            api,
            endpoint: "/v1/completions".into(),
            model: "m".into(),
            ignore_eos: true,
            temperature: None,
        }
    }

    #[test]
    fn payloads_carry_only_standard_fields_and_ignore_eos() {
        let p = payload(&settings(Api::Completions), &Prompt::Ids(vec![1, 2]), 7);
        assert_eq!(
            p,
            json!({"model": "m", "prompt": [1, 2], "max_tokens": 7, "stream": true,
                   "stream_options": {"include_usage": true}, "ignore_eos": true})
        );
        let mut s = settings(Api::Chat);
        s.ignore_eos = false;
        s.temperature = Some(0.0);
        let p = payload(&s, &Prompt::Text("hi".into()), 3);
        assert_eq!(
            p,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                   "max_completion_tokens": 3, "stream": true, "temperature": 0.0,
                   "stream_options": {"include_usage": true}})
        );
    }

    #[test]
    fn only_the_bare_role_announcement_is_not_a_token() {
        let c = |v: Value| is_role_only(&v);
        assert!(c(
            json!({"delta": {"role": "assistant", "content": ""}, "finish_reason": null})
        ));
        assert!(c(json!({"delta": {"role": "assistant"}})));
        assert!(!c(json!({"delta": {"role": "assistant", "content": "Hi"}})));
        assert!(!c(json!({"delta": {"content": ""}, "finish_reason": null})));
        assert!(!c(
            json!({"delta": {"role": "assistant"}, "finish_reason": "stop"})
        ));
        assert!(!c(
            json!({"delta": {"role": "assistant", "tool_calls": []}})
        ));
        assert!(!c(json!({"text": ""})));
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad model","type":"x"}}"#),
            "bad model"
        );
        assert_eq!(error_message("oops\n"), "oops");
    }
}
