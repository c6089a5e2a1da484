//! Chat messages and tools as clients send them, checked and turned into what chat templates
//! expect.
//!
//! Invariants:
//! - `messages` is a non-empty list of objects with a known role; every failure names its path
//!   (`messages[1].content[0].type`).
//! - Content may be a string or a list of text parts (Spring AI, LangChain send parts); parts
//!   are joined with "\n" into one string, because Hugging Face templates read a string.
//!   Non-text parts are refused: this server has no vision or audio input.
//! - `developer` is OpenAI's newer name for `system` and is passed on as `system`.
//! - An assistant tool call's `arguments` (a JSON string on the wire) is parsed into an object
//!   for the template, as transformers-era templates `tojson` it themselves.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::limits::{MAX_MESSAGES, MAX_TOOLS};

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// Checks `messages` and returns them normalized for the template.
pub fn normalize_messages(messages: Option<&Value>) -> Result<Value, ApiError> {
    let list = match messages {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("messages", "`messages` is required"))
        }
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(ApiError::invalid(
                "messages",
                "`messages` must be a list of message objects",
            ))
        }
    };
    if list.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must not be empty",
        ));
    }
    if list.len() > MAX_MESSAGES {
        return Err(ApiError::invalid(
            "messages",
            format!(
                "at most {MAX_MESSAGES} messages are accepted, got {}",
                list.len()
            ),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| normalize_message(i, m))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn normalize_message(i: usize, message: &Value) -> Result<Value, ApiError> {
    let at = |field: &str| format!("messages[{i}].{field}");
    let Value::Object(fields) = message else {
        return Err(ApiError::invalid(
            format!("messages[{i}]"),
            format!("messages[{i}] must be an object"),
        ));
    };
    let role = match fields.get("role") {
        Some(Value::String(r)) if ROLES.contains(&r.as_str()) => r.as_str(),
        Some(Value::String(r)) => {
            return Err(ApiError::invalid(
                at("role"),
                format!("unknown role {r:?}; one of {}", ROLES.join(", ")),
            ))
        }
        Some(_) => return Err(ApiError::invalid(at("role"), "`role` must be a string")),
        None => return Err(ApiError::invalid(at("role"), "`role` is required")),
    };
    let mut out: Map<String, Value> = fields.clone();
    out.insert(
        "role".into(),
        Value::String(if role == "developer" { "system" } else { role }.to_string()),
    );
    let content = match fields.get("content") {
        None | Some(Value::Null) => {
            // Only an assistant turn that calls tools may leave content out.
            if role != "assistant" {
                return Err(ApiError::invalid(
                    at("content"),
                    format!("a {role} message needs `content`"),
                ));
            }
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(parts)) => Some(join_text_parts(i, parts)?),
        Some(_) => {
            return Err(ApiError::invalid(
                at("content"),
                "`content` must be a string or a list of text parts",
            ))
        }
    };
    match content {
        Some(text) => out.insert("content".into(), Value::String(text)),
        None => out.remove("content"),
    };
    if let Some(name) = fields.get("name") {
        if !name.is_string() && !name.is_null() {
            return Err(ApiError::invalid(at("name"), "`name` must be a string"));
        }
    }
    if let Some(calls) = fields.get("tool_calls") {
        out.insert("tool_calls".into(), normalize_tool_calls(i, calls)?);
    }
    Ok(Value::Object(out))
}

fn join_text_parts(i: usize, parts: &[Value]) -> Result<String, ApiError> {
    let mut texts = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        let Value::Object(p) = part else {
            return Err(ApiError::invalid(at, "a content part must be an object"));
        };
        match (p.get("type").and_then(Value::as_str), p.get("text")) {
            (Some("text" | "input_text"), Some(Value::String(t))) => texts.push(t.as_str()),
            (Some("text" | "input_text"), _) => {
                return Err(ApiError::invalid(
                    format!("{at}.text"),
                    "a text part needs a string `text`",
                ))
            }
            (Some(other), _) => {
                return Err(ApiError::unsupported(
                    format!("{at}.type"),
                    format!(
                    "content parts of type {other:?} are not supported; this model takes text only"
                ),
                ))
            }
            (None, _) => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    "a content part needs a `type`",
                ))
            }
        }
    }
    Ok(texts.join("\n"))
}

fn normalize_tool_calls(i: usize, calls: &Value) -> Result<Value, ApiError> {
    let at = format!("messages[{i}].tool_calls");
    let list = match calls {
        Value::Null => return Ok(Value::Null),
        Value::Array(list) => list,
        _ => return Err(ApiError::invalid(at, "`tool_calls` must be a list")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (j, call) in list.iter().enumerate() {
        let Some(mut call) = call.as_object().cloned() else {
            return Err(ApiError::invalid(
                format!("{at}[{j}]"),
                "a tool call must be an object",
            ));
        };
        if let Some(Value::Object(function)) = call.get_mut("function") {
            if !matches!(function.get("name"), Some(Value::String(_))) {
                return Err(ApiError::invalid(
                    format!("{at}[{j}].function.name"),
                    "a tool call needs a function name",
                ));
            }
            if let Some(Value::String(args)) = function.get("arguments") {
                if let Ok(parsed @ Value::Object(_)) = serde_json::from_str::<Value>(args) {
                    function.insert("arguments".into(), parsed);
                }
            }
        } else {
            return Err(ApiError::invalid(
                format!("{at}[{j}].function"),
                "a tool call needs a `function` object",
            ));
        }
        out.push(Value::Object(call));
    }
    Ok(Value::Array(out))
}

/// Checks `tools`: a list of `{"type": "function", "function": {"name", …}}`. Returns the list
/// of function objects the template sees (transformers passes the wrapper objects; so do we).
pub fn check_tools(tools: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let list = match tools {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ApiError::invalid("tools", "`tools` must be a list")),
    };
    if list.is_empty() {
        return Ok(None);
    }
    if list.len() > MAX_TOOLS {
        return Err(ApiError::invalid(
            "tools",
            format!("at most {MAX_TOOLS} tools are accepted, got {}", list.len()),
        ));
    }
    for (i, tool) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        let Value::Object(t) = tool else {
            return Err(ApiError::invalid(at, "a tool must be an object"));
        };
        if let Some(kind) = t.get("type") {
            if kind.as_str() != Some("function") {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    "only tools of type \"function\" are supported",
                ));
            }
        }
        let Some(Value::Object(f)) = t.get("function") else {
            return Err(ApiError::invalid(
                format!("{at}.function"),
                "a tool needs a `function` object",
            ));
        };
        match f.get("name") {
            Some(Value::String(n)) if !n.is_empty() => {}
            _ => {
                return Err(ApiError::invalid(
                    format!("{at}.function.name"),
                    "a function needs a non-empty `name`",
                ))
            }
        }
        if let Some(p) = f.get("parameters") {
            if !p.is_object() && !p.is_null() {
                return Err(ApiError::invalid(
                    format!("{at}.function.parameters"),
                    "`parameters` must be a JSON Schema object",
                ));
            }
        }
    }
    Ok(Some(Value::Array(list.clone())))
}

/// What `tool_choice` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolChoice {
    None,
    Auto,
}

/// Reads `tool_choice`. Forcing a call (`required`, or a named function) needs constrained
/// decoding, which this server does not have: refused rather than silently treated as auto.
pub fn read_tool_choice(choice: Option<&Value>, has_tools: bool) -> Result<ToolChoice, ApiError> {
    match choice {
        None | Some(Value::Null) => Ok(if has_tools { ToolChoice::Auto } else { ToolChoice::None }),
        Some(Value::String(s)) if s == "none" => Ok(ToolChoice::None),
        Some(Value::String(s)) if s == "auto" => Ok(ToolChoice::Auto),
        Some(Value::String(s)) if s == "required" => Err(ApiError::unsupported(
            "tool_choice",
            "tool_choice \"required\" needs constrained decoding, which this server does not support; use \"auto\"",
        )),
        Some(Value::Object(_)) => Err(ApiError::unsupported(
            "tool_choice",
            "naming a function in tool_choice needs constrained decoding, which this server does not support; use \"auto\"",
        )),
        Some(_) => Err(ApiError::invalid("tool_choice", "`tool_choice` must be \"none\", \"auto\" or \"required\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parts_are_joined_and_developer_is_system() {
        let m = json!([{"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]);
        let out = normalize_messages(Some(&m)).expect("ok");
        assert_eq!(out, json!([{"role": "system", "content": "a\nb"}]));
    }

    #[test]
    fn failures_name_the_path() {
        let cases = [
            (json!([]), "messages"),
            (
                json!([{"role": "wizard", "content": "x"}]),
                "messages[0].role",
            ),
            (json!([{"content": "x"}]), "messages[0].role"),
            (json!([{"role": "user"}]), "messages[0].content"),
            (
                json!([{"role": "user", "content": 5}]),
                "messages[0].content",
            ),
            (
                json!([{"role": "user", "content": [{"type": "image_url"}]}]),
                "messages[0].content[0].type",
            ),
            (json!(["hi"]), "messages[0]"),
        ];
        for (m, param) in cases {
            let e = normalize_messages(Some(&m)).expect_err("bad");
            assert_eq!(e.param(), Some(param), "{m}");
        }
    }

    #[test]
    fn tool_call_arguments_become_objects() {
        let m = json!([{"role": "assistant", "content": null, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]}]);
        let out = normalize_messages(Some(&m)).expect("ok");
        assert_eq!(
            out[0]["tool_calls"][0]["function"]["arguments"],
            json!({"x": 1})
        );
        assert!(out[0].get("content").is_none());
    }

    #[test]
    fn tool_choice_forcing_is_refused() {
        assert_eq!(read_tool_choice(None, true).ok(), Some(ToolChoice::Auto));
        assert!(read_tool_choice(Some(&json!("required")), true).is_err());
        assert!(read_tool_choice(Some(&json!({"type": "function"})), true).is_err());
    }
}
