//! Tool-call parsers: find the calls in the model's text and return them whole.
//!
//! Invariants:
//! - A tool call is only ever emitted complete (name and full arguments in one piece), so a
//!   streaming client gets each call in a single chunk; text inside a call is never emitted as
//!   content.
//! - Text that is not a well-formed call is given back as content, unchanged: a parser never
//!   loses output.
//! - `hermes`: `<tool_call>{"name": …, "arguments": {…}}</tool_call>` anywhere in the output.
//! - `llama3_json`: the whole output is one or more `{"name": …, "parameters": {…}}` objects
//!   (separated by `;`), optionally after `<|python_tag|>`; anything else is content.

use ferrum_config::ToolParserKind;
use serde_json::Value;

use super::reasoning::partial_tag_suffix;

const HERMES_OPEN: &str = "<tool_call>";
const HERMES_CLOSE: &str = "</tool_call>";
const PYTHON_TAG: &str = "<|python_tag|>";

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    /// The arguments as a JSON text (OpenAI sends a string).
    pub arguments: String,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ToolStep {
    pub content: String,
    pub calls: Vec<ToolCall>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Llama: not yet known whether the output is JSON.
    Start,
    /// Plain text (hermes: outside a call).
    Text,
    /// Hermes: inside `<tool_call>`; Llama: collecting the JSON output.
    Call,
}

#[derive(Debug, Clone)]
pub struct ToolParser {
    kind: ToolParserKind,
    state: State,
    held: String,
}

impl ToolParser {
    pub fn new(kind: ToolParserKind) -> Self {
        let state = match kind {
            ToolParserKind::Hermes => State::Text,
            ToolParserKind::Llama3Json => State::Start,
        };
        Self {
            kind,
            state,
            held: String::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> ToolStep {
        let mut buf = std::mem::take(&mut self.held);
        buf.push_str(text);
        match self.kind {
            ToolParserKind::Hermes => self.push_hermes(buf),
            ToolParserKind::Llama3Json => self.push_llama(buf),
        }
    }

    pub fn finish(&mut self) -> ToolStep {
        let held = std::mem::take(&mut self.held);
        match (self.kind, self.state) {
            (_, State::Text) | (_, State::Start) => ToolStep {
                content: held,
                calls: Vec::new(),
            },
            (ToolParserKind::Hermes, State::Call) => {
                // A call cut off by the end of output (models often stop before the closing
                // tag): keep it when its JSON is complete.
                let body = held.strip_prefix(HERMES_OPEN).unwrap_or(&held);
                match parse_call(body) {
                    Some(call) => ToolStep {
                        content: String::new(),
                        calls: vec![call],
                    },
                    None => ToolStep {
                        content: held,
                        calls: Vec::new(),
                    },
                }
            }
            (ToolParserKind::Llama3Json, State::Call) => match parse_llama(&held) {
                Some(calls) => ToolStep {
                    content: String::new(),
                    calls,
                },
                None => ToolStep {
                    content: held,
                    calls: Vec::new(),
                },
            },
        }
    }

    fn push_hermes(&mut self, mut buf: String) -> ToolStep {
        let mut out = ToolStep::default();
        loop {
            match self.state {
                State::Call => match buf.find(HERMES_CLOSE) {
                    Some(end) => {
                        let raw = &buf[..end + HERMES_CLOSE.len()];
                        let body = &raw[HERMES_OPEN.len().min(raw.len())..end];
                        match parse_call(body) {
                            Some(call) => out.calls.push(call),
                            None => out.content.push_str(raw),
                        }
                        buf = buf[end + HERMES_CLOSE.len()..].to_string();
                        self.state = State::Text;
                    }
                    None => {
                        self.held = buf;
                        return out;
                    }
                },
                _ => match buf.find(HERMES_OPEN) {
                    Some(start) => {
                        out.content.push_str(&buf[..start]);
                        buf = buf[start..].to_string();
                        self.state = State::Call;
                    }
                    None => {
                        let keep = partial_tag_suffix(&buf, HERMES_OPEN);
                        let split = buf.len() - keep;
                        out.content.push_str(&buf[..split]);
                        self.held = buf[split..].to_string();
                        return out;
                    }
                },
            }
        }
    }

    fn push_llama(&mut self, buf: String) -> ToolStep {
        match self.state {
            State::Start => {
                let t = buf.trim_start();
                if t.starts_with('{') || t.starts_with(PYTHON_TAG) {
                    self.state = State::Call;
                    self.held = buf;
                    ToolStep::default()
                } else if t.is_empty() || PYTHON_TAG.starts_with(t) {
                    self.held = buf;
                    ToolStep::default()
                } else {
                    self.state = State::Text;
                    ToolStep {
                        content: buf,
                        calls: Vec::new(),
                    }
                }
            }
            State::Call => {
                self.held = buf;
                ToolStep::default()
            }
            State::Text => ToolStep {
                content: buf,
                calls: Vec::new(),
            },
        }
    }
}

/// `{"name": …, "arguments"|"parameters": …}` → a call.
fn call_from_value(v: &Value) -> Option<ToolCall> {
    let name = v.get("name")?.as_str()?.to_string();
    let args = v.get("arguments").or_else(|| v.get("parameters"));
    let arguments = match args {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => serde_json::to_string(other).ok()?,
    };
    Some(ToolCall { name, arguments })
}

fn parse_call(body: &str) -> Option<ToolCall> {
    let v: Value = serde_json::from_str(body.trim()).ok()?;
    call_from_value(&v)
}

fn parse_llama(text: &str) -> Option<Vec<ToolCall>> {
    let t = text.trim_start();
    let t = t.strip_prefix(PYTHON_TAG).unwrap_or(t);
    let mut calls = Vec::new();
    let mut rest = t.trim();
    while !rest.is_empty() {
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        let value = stream.next()?.ok()?;
        calls.push(call_from_value(&value)?);
        rest = rest[stream.byte_offset()..].trim_start();
        rest = rest.strip_prefix(';').unwrap_or(rest).trim_start();
    }
    (!calls.is_empty()).then_some(calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: ToolParserKind, pieces: &[&str]) -> ToolStep {
        let mut p = ToolParser::new(kind);
        let mut all = ToolStep::default();
        for piece in pieces {
            let s = p.push(piece);
            all.content.push_str(&s.content);
            all.calls.extend(s.calls);
        }
        let s = p.finish();
        all.content.push_str(&s.content);
        all.calls.extend(s.calls);
        all
    }

    #[test]
    fn hermes_calls_come_out_whole() {
        let s = run(
            ToolParserKind::Hermes,
            &[
                "Sure.\n<tool",
                "_call>\n{\"name\": \"get_weather\", \"argu",
                "ments\": {\"city\": \"Paris\"}}\n</tool_call>",
            ],
        );
        assert_eq!(s.content, "Sure.\n");
        assert_eq!(
            s.calls,
            vec![ToolCall {
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into()
            }]
        );
    }

    #[test]
    fn hermes_bad_json_is_content_and_unclosed_call_is_kept() {
        let s = run(
            ToolParserKind::Hermes,
            &["<tool_call>not json</tool_call> ok"],
        );
        assert_eq!(s.content, "<tool_call>not json</tool_call> ok");
        assert!(s.calls.is_empty());
        let s = run(
            ToolParserKind::Hermes,
            &["<tool_call>{\"name\": \"f\", \"arguments\": {}}"],
        );
        assert_eq!(s.calls.len(), 1);
        let s = run(ToolParserKind::Hermes, &["a <tool"]);
        assert_eq!(s.content, "a <tool");
    }

    #[test]
    fn llama_json_calls_and_plain_text() {
        let s = run(
            ToolParserKind::Llama3Json,
            &[
                "{\"name\": \"f\", \"param",
                "eters\": {\"x\": 1}}; {\"name\": \"g\", \"parameters\": {}}",
            ],
        );
        assert_eq!(s.calls.len(), 2);
        assert_eq!(s.calls[0].arguments, r#"{"x":1}"#);
        let s = run(ToolParserKind::Llama3Json, &["Hello {\"name\"}"]);
        assert_eq!(s.content, "Hello {\"name\"}");
        let s = run(ToolParserKind::Llama3Json, &["{not json"]);
        assert_eq!(s.content, "{not json");
    }
}
