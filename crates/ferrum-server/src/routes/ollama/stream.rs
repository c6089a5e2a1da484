//! A request's [`Driver`] answered in Ollama's shapes: NDJSON chunks then one final object
//! (`"stream": true`, the default), or one object holding everything.
//!
//! Invariants:
//! - Every line is one JSON object followed by `\n`; no keep-alive lines (Ollama clients parse
//!   every line as JSON), so a gone client is noticed at the next write.
//! - The last line is the final object (`done: true` with the counts and nanosecond timings)
//!   or, if the request failed after the stream started, `{"error": …}`.
//! - A tool call is sent whole in one chunk, its `arguments` a JSON object.
//! - Timings: `prompt_eval_duration` is arrival to first token (queue and prefill),
//!   `eval_duration` first to last token, `total_duration` arrival to the final object;
//!   `load_duration` is 0 because models are loaded before they take requests.

use std::collections::VecDeque;
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::reply::{error, error_body, line, ndjson, now_rfc3339};
use crate::driver::{Driver, Event};
use crate::ids::new_id;
use crate::output::tools::ToolCall;
use crate::output::{Delta, FinishReason, TokenLogprob};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `/api/chat`: text under `message.content`.
    Chat,
    /// `/api/generate`: text under `response`.
    Generate,
}

/// What every object of one response shares.
pub struct Frame {
    pub shape: Shape,
    pub model: String,
    pub arrival: Instant,
    pub want_logprobs: bool,
}

/// The text of a response so far.
#[derive(Default)]
struct Text {
    content: String,
    thinking: String,
    tool_calls: Vec<ToolCall>,
    logprobs: Vec<TokenLogprob>,
}

impl Text {
    fn from_delta(d: &Delta) -> Self {
        Self {
            content: d.content.clone(),
            thinking: d.reasoning.clone(),
            tool_calls: d.tool_calls.clone(),
            logprobs: d.logprobs.clone(),
        }
    }

    fn add(&mut self, d: Delta) {
        self.content.push_str(&d.content);
        self.thinking.push_str(&d.reasoning);
        self.tool_calls.extend(d.tool_calls);
        self.logprobs.extend(d.logprobs);
    }

    fn is_empty(&self) -> bool {
        self.content.is_empty()
            && self.thinking.is_empty()
            && self.tool_calls.is_empty()
            && self.logprobs.is_empty()
    }
}

/// Tool calls as Ollama sends them: whole, `arguments` an object.
fn tool_calls_json(calls: &[ToolCall]) -> Value {
    Value::Array(
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let arguments = match serde_json::from_str::<Value>(&c.arguments) {
                    Ok(v @ Value::Object(_)) => v,
                    // The parsers emit objects; anything else is kept, not lost.
                    Ok(other) => json!({ "value": other }),
                    Err(_) => json!({ "value": c.arguments }),
                };
                json!({
                    "id": new_id("call_").chars().take(29).collect::<String>(),
                    "function": {"index": i, "name": c.name, "arguments": arguments},
                })
            })
            .collect(),
    )
}

fn logprobs_json(lps: &[TokenLogprob]) -> Value {
    let entry = |token: &str, logprob: f32| json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()});
    lps.iter()
        .map(|lp| {
            let mut e = entry(&lp.token, lp.logprob);
            e["top_logprobs"] = lp.top.iter().map(|(t, p)| entry(t, *p)).collect();
            e
        })
        .collect()
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Frame {
    fn object(&self, text: &Text, done: bool) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("model".into(), Value::String(self.model.clone()));
        m.insert("created_at".into(), Value::String(now_rfc3339()));
        match self.shape {
            Shape::Chat => {
                let mut message = json!({"role": "assistant", "content": text.content});
                if !text.thinking.is_empty() {
                    message["thinking"] = Value::String(text.thinking.clone());
                }
                if !text.tool_calls.is_empty() {
                    message["tool_calls"] = tool_calls_json(&text.tool_calls);
                }
                m.insert("message".into(), message);
            }
            Shape::Generate => {
                m.insert("response".into(), Value::String(text.content.clone()));
                if !text.thinking.is_empty() {
                    m.insert("thinking".into(), Value::String(text.thinking.clone()));
                }
                if !text.tool_calls.is_empty() {
                    m.insert("tool_calls".into(), tool_calls_json(&text.tool_calls));
                }
            }
        }
        if self.want_logprobs && !text.logprobs.is_empty() {
            m.insert("logprobs".into(), logprobs_json(&text.logprobs));
        }
        m.insert("done".into(), Value::Bool(done));
        m
    }

    /// One chunk for a delta, or `None` when it carries no text.
    fn chunk(&self, d: &Delta) -> Option<Value> {
        let text = Text::from_delta(d);
        (!text.is_empty()).then(|| Value::Object(self.object(&text, false)))
    }

    /// The final object: the text given (empty when streamed), the reason and the counts.
    fn done(&self, driver: &Driver, text: &Text) -> Value {
        let mut m = self.object(text, true);
        let choice = driver.choices.first();
        let reason = match choice.and_then(|c| c.finish_reason) {
            Some(FinishReason::Length) => "length",
            _ => "stop",
        };
        let first = choice.and_then(|c| c.first_token_at);
        let last = choice.and_then(|c| c.last_token_at);
        let prompt_eval = first.map_or(0, |t| nanos(t.duration_since(self.arrival)));
        let eval = match (first, last) {
            (Some(f), Some(l)) => nanos(l.duration_since(f)),
            _ => 0,
        };
        m.insert("done_reason".into(), Value::from(reason));
        m.insert(
            "total_duration".into(),
            Value::from(nanos(self.arrival.elapsed())),
        );
        m.insert("load_duration".into(), Value::from(0u64));
        m.insert(
            "prompt_eval_count".into(),
            Value::from(driver.prompt_tokens()),
        );
        m.insert("prompt_eval_duration".into(), Value::from(prompt_eval));
        m.insert("eval_count".into(), Value::from(driver.completion_tokens()));
        m.insert("eval_duration".into(), Value::from(eval));
        Value::Object(m)
    }
}

pub async fn respond(driver: Driver, frame: Frame, stream: bool) -> Response {
    if stream {
        streamed(driver, frame)
    } else {
        whole(driver, frame).await
    }
}

async fn whole(mut driver: Driver, frame: Frame) -> Response {
    let mut text = Text::default();
    while let Some(event) = driver.next().await {
        match event {
            Event::Delta(d) => text.add(d),
            Event::Error(e) => return error(e),
        }
    }
    axum::Json(frame.done(&driver, &text)).into_response()
}

struct StreamState {
    driver: Driver,
    frame: Frame,
    queue: VecDeque<Value>,
    done: bool,
}

fn streamed(driver: Driver, frame: Frame) -> Response {
    let state = StreamState {
        driver,
        frame,
        queue: VecDeque::new(),
        done: false,
    };
    let lines = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(v) = st.queue.pop_front() {
                return Some((Ok(line(&v)), st));
            }
            if st.done {
                return None;
            }
            match st.driver.next().await {
                Some(Event::Delta(d)) => st.queue.extend(st.frame.chunk(&d)),
                Some(Event::Error(e)) => {
                    st.queue.push_back(error_body(&e));
                    st.done = true;
                }
                None => {
                    st.queue
                        .push_back(st.frame.done(&st.driver, &Text::default()));
                    st.done = true;
                }
            }
        }
    });
    ndjson(lines)
}
