//! What a template sees: messages, tools and documents checked and normalized the way
//! transformers' `apply_chat_template` prepares them.
//!
//! Invariants:
//! - Messages are a non-empty list of objects; keys whose value is `null` are dropped (OpenAI
//!   clients send `"tool_calls": null`, and templates test for a missing key, not for null).
//! - A message's reasoning, under any of `reasoning_content`, `thinking` or `reasoning`, is also
//!   visible as `reasoning_content` and `thinking`, so templates find it under the name they read.
//! - Tools and documents are lists of objects when present.

use serde_json::{Map, Value};

use crate::error::{Result, TokenizerError};

/// Names a message's reasoning is passed under; the first is the one most templates read.
const REASONING_FIELDS: [&str; 3] = ["reasoning_content", "thinking", "reasoning"];

fn bad_input(message: impl Into<String>) -> TokenizerError {
    TokenizerError::TemplateInput(message.into())
}

/// Checks and normalizes the messages (see module invariants).
pub(crate) fn prepare_messages(messages: &Value) -> Result<Vec<Value>> {
    let Value::Array(list) = messages else {
        return Err(bad_input("`messages` must be a list of message objects"));
    };
    if list.is_empty() {
        return Err(bad_input(
            "cannot apply a chat template to an empty conversation",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, message)| match message {
            Value::Object(fields) => Ok(Value::Object(alias_reasoning(drop_nulls(fields)))),
            _ => Err(bad_input(format!("messages[{i}] must be an object"))),
        })
        .collect()
}

/// Checks that `tools` or `documents` is a list of objects.
pub(crate) fn check_object_list(value: Option<&Value>, what: &str) -> Result<()> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => match items.iter().position(|item| !item.is_object()) {
            Some(i) => Err(bad_input(format!("{what}[{i}] must be an object"))),
            None => Ok(()),
        },
        Some(_) => Err(bad_input(format!("`{what}` must be a list of objects"))),
    }
}

fn drop_nulls(fields: &Map<String, Value>) -> Map<String, Value> {
    fields
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Python's `{"thinking": r, **message, "reasoning_content": r}`: `thinking` first unless the
/// message has it, the message's own keys in order, `reasoning_content` last unless present.
fn alias_reasoning(message: Map<String, Value>) -> Map<String, Value> {
    let Some(reasoning) = REASONING_FIELDS
        .iter()
        .find_map(|field| message.get(*field))
        .cloned()
    else {
        return message;
    };
    let mut aliased = Map::with_capacity(message.len() + 2);
    aliased.insert("thinking".to_string(), reasoning.clone());
    for (key, value) in message {
        aliased.insert(key, value);
    }
    aliased.insert("reasoning_content".to_string(), reasoning);
    aliased
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nulls_are_dropped_and_reasoning_aliased() {
        let messages = json!([
            {"role": "user", "content": "hi", "tool_calls": null},
            {"role": "assistant", "content": "ok", "reasoning": "because"}
        ]);
        let prepared = prepare_messages(&messages).expect("valid");
        assert_eq!(prepared[0], json!({"role": "user", "content": "hi"}));
        let keys: Vec<&str> = prepared[1]
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "thinking",
                "role",
                "content",
                "reasoning",
                "reasoning_content"
            ]
        );
        assert_eq!(prepared[1]["reasoning_content"], "because");
    }

    #[test]
    fn existing_names_keep_their_places() {
        let messages = json!([{"reasoning_content": "r", "role": "assistant", "thinking": "t"}]);
        let prepared = prepare_messages(&messages).expect("valid");
        let fields = prepared[0].as_object().expect("object");
        let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(keys, ["thinking", "reasoning_content", "role"]);
        assert_eq!(fields["thinking"], "t");
        assert_eq!(fields["reasoning_content"], "r");
    }

    #[test]
    fn shapes_are_checked() {
        assert!(prepare_messages(&json!([])).is_err());
        assert!(prepare_messages(&json!({"role": "user"})).is_err());
        assert!(prepare_messages(&json!(["hi"])).is_err());
        assert!(check_object_list(Some(&json!([{"type": "function"}])), "tools").is_ok());
        assert!(check_object_list(Some(&json!(["x"])), "tools").is_err());
    }
}
