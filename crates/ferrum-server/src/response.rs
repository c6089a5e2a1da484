//! Response bodies: chat completions and text completions, whole or as stream chunks.
//!
//! Invariants:
//! - Choices are indexed from 0 and contiguous; every chunk of a response has the same `id`,
//!   `created` and `model`.
//! - A streamed tool call is sent whole in one chunk (`id`, `type`, `name`, full `arguments`).
//! - `usage: null` appears on chunks only when the client asked for usage; the usage chunk has
//!   `choices: []` and comes last before `[DONE]`.
//! - With a reasoning parser, reasoning is sent under both `reasoning_content` and `reasoning`
//!   (clients read one or the other).

use serde_json::{json, Map, Value};

use crate::ids::new_id;
use crate::output::{Delta, TokenLogprob};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Completion,
}

/// Token counts for `usage`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub cached_tokens: usize,
}

impl Usage {
    pub fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        })
    }
}

pub struct Renderer {
    pub kind: Kind,
    pub id: String,
    pub created: u64,
    pub model: String,
    pub include_usage: bool,
    pub reasoning: bool,
}

impl Renderer {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        }
    }

    fn envelope(&self, chunk: bool, choices: Vec<Value>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("object".into(), Value::String(self.object(chunk).into()));
        m.insert("created".into(), Value::from(self.created));
        m.insert("model".into(), Value::String(self.model.clone()));
        m.insert("choices".into(), Value::Array(choices));
        if chunk && self.include_usage {
            m.insert("usage".into(), Value::Null);
        }
        m
    }

    /// The opening chunk of a streamed chat choice (`role` only, as OpenAI sends it).
    pub fn role_chunk(&self, index: usize) -> Value {
        let choice = json!({"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null});
        Value::Object(self.envelope(true, vec![choice]))
    }

    /// The chunks for one delta: its text (if any), then its finish (if any). Tokens whose text
    /// is held back still get a chunk with empty text, unless the finish chunk follows anyway.
    pub fn delta_chunks(&self, d: &Delta) -> Vec<Value> {
        let mut out = Vec::new();
        let has_body = !d.content.is_empty()
            || !d.reasoning.is_empty()
            || !d.tool_calls.is_empty()
            || !d.logprobs.is_empty()
            || (d.new_tokens > 0 && d.finish_reason.is_none());
        if has_body {
            let choice = match self.kind {
                Kind::Chat => {
                    let mut delta = Map::new();
                    if !d.content.is_empty() || (d.reasoning.is_empty() && d.tool_calls.is_empty())
                    {
                        delta.insert("content".into(), Value::String(d.content.clone()));
                    }
                    if !d.reasoning.is_empty() {
                        delta.insert(
                            "reasoning_content".into(),
                            Value::String(d.reasoning.clone()),
                        );
                        delta.insert("reasoning".into(), Value::String(d.reasoning.clone()));
                    }
                    if !d.tool_calls.is_empty() {
                        delta.insert(
                            "tool_calls".into(),
                            tool_calls_json(&d.tool_calls, Some(d.first_tool_call_index)),
                        );
                    }
                    json!({"index": d.index, "delta": delta, "logprobs": chat_logprobs(&d.logprobs), "finish_reason": null})
                }
                Kind::Completion => json!({
                    "index": d.index, "text": d.content, "logprobs": completion_logprobs(&d.logprobs, 0),
                    "finish_reason": null, "stop_reason": null,
                }),
            };
            out.push(Value::Object(self.envelope(true, vec![choice])));
        }
        if let Some(reason) = d.finish_reason {
            let choice = match self.kind {
                Kind::Chat => {
                    json!({"index": d.index, "delta": {}, "logprobs": null, "finish_reason": reason.as_str(), "stop_reason": d.stop_reason})
                }
                Kind::Completion => {
                    json!({"index": d.index, "text": "", "logprobs": null, "finish_reason": reason.as_str(), "stop_reason": d.stop_reason})
                }
            };
            out.push(Value::Object(self.envelope(true, vec![choice])));
        }
        out
    }

    pub fn usage_chunk(&self, usage: Usage) -> Value {
        let mut m = self.envelope(true, Vec::new());
        m.insert("usage".into(), usage.to_json());
        Value::Object(m)
    }

    /// A whole (non-streamed) response from the accumulated choices.
    pub fn full(&self, choices: &[Accumulated], usage: Usage) -> Value {
        let list = choices
            .iter()
            .enumerate()
            .map(|(index, c)| match self.kind {
                Kind::Chat => {
                    let mut message = Map::new();
                    message.insert("role".into(), "assistant".into());
                    let content = if c.content.is_empty() && !c.tool_calls.is_empty() {
                        Value::Null
                    } else {
                        Value::String(c.content.clone())
                    };
                    message.insert("content".into(), content);
                    if self.reasoning {
                        let r = if c.reasoning.is_empty() { Value::Null } else { Value::String(c.reasoning.clone()) };
                        message.insert("reasoning_content".into(), r.clone());
                        message.insert("reasoning".into(), r);
                    }
                    message.insert("tool_calls".into(), tool_calls_json(&c.tool_calls, None));
                    json!({
                        "index": index, "message": message,
                        "logprobs": if c.want_logprobs { chat_logprobs(&c.logprobs) } else { Value::Null },
                        "finish_reason": c.finish_reason, "stop_reason": c.stop_reason,
                    })
                }
                Kind::Completion => json!({
                    "index": index, "text": c.content,
                    "logprobs": if c.want_logprobs { completion_logprobs(&c.logprobs, 0) } else { Value::Null },
                    "finish_reason": c.finish_reason, "stop_reason": c.stop_reason,
                }),
            })
            .collect();
        let mut m = self.envelope(false, list);
        m.insert("usage".into(), usage.to_json());
        Value::Object(m)
    }
}

/// One choice of a non-streamed response, built from its deltas.
#[derive(Debug, Default, Clone)]
pub struct Accumulated {
    pub content: String,
    pub reasoning: String,
    pub tool_calls: Vec<crate::output::tools::ToolCall>,
    pub logprobs: Vec<TokenLogprob>,
    pub finish_reason: Option<&'static str>,
    pub stop_reason: Value,
    pub want_logprobs: bool,
}

impl Accumulated {
    pub fn add(&mut self, d: Delta) {
        self.content.push_str(&d.content);
        self.reasoning.push_str(&d.reasoning);
        self.tool_calls.extend(d.tool_calls);
        self.logprobs.extend(d.logprobs);
        if let Some(r) = d.finish_reason {
            self.finish_reason = Some(r.as_str());
            self.stop_reason = d.stop_reason.unwrap_or(Value::Null);
        }
    }
}

/// Tool calls in OpenAI's shape; streamed ones carry `index`, counted from `first_index`.
fn tool_calls_json(calls: &[crate::output::tools::ToolCall], first_index: Option<usize>) -> Value {
    Value::Array(
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut v = json!({
                    "id": new_id("call_").chars().take(29).collect::<String>(),
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                });
                if let Some(first) = first_index {
                    v["index"] = Value::from(first + i);
                }
                v
            })
            .collect(),
    )
}

fn chat_logprobs(lps: &[TokenLogprob]) -> Value {
    if lps.is_empty() {
        return Value::Null;
    }
    let entry = |token: &str, logprob: f32| json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()});
    let content: Vec<Value> = lps
        .iter()
        .map(|lp| {
            let mut e = entry(&lp.token, lp.logprob);
            e["top_logprobs"] = Value::Array(lp.top.iter().map(|(t, p)| entry(t, *p)).collect());
            e
        })
        .collect();
    json!({"content": content})
}

fn completion_logprobs(lps: &[TokenLogprob], start_offset: usize) -> Value {
    if lps.is_empty() {
        return Value::Null;
    }
    let mut offset = start_offset;
    let mut offsets = Vec::with_capacity(lps.len());
    for lp in lps {
        offsets.push(offset);
        offset += lp.token.len();
    }
    json!({
        "tokens": lps.iter().map(|l| l.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": lps.iter().map(|l| l.logprob).collect::<Vec<_>>(),
        "top_logprobs": lps.iter().map(|l| {
            l.top.iter().map(|(t, p)| (t.clone(), Value::from(*p))).collect::<Map<String, Value>>()
        }).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}
