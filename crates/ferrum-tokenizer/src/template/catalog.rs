//! [`ChatTemplates`]: the template sources a model ships, and which one a request gets.
//!
//! Invariant: selection follows transformers' `get_chat_template`: a single template is the
//! `"default"` one; with several named templates, an explicit name wins, then `"tool_use"` when
//! tools are given, then `"default"`.

use std::collections::BTreeMap;

use serde_json::Value;

const DEFAULT: &str = "default";
const TOOL_USE: &str = "tool_use";

/// Named chat-template sources (not yet compiled).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatTemplates {
    by_name: BTreeMap<String, String>,
}

impl ChatTemplates {
    /// One unnamed template (a string `chat_template`, a `chat_template.jinja` file, GGUF
    /// `tokenizer.chat_template`).
    pub fn single(source: impl Into<String>) -> Self {
        let mut templates = Self::default();
        templates.set_default(source);
        templates
    }

    /// Replaces the default template, keeping the named ones.
    pub fn set_default(&mut self, source: impl Into<String>) {
        self.insert(DEFAULT, source);
    }

    /// Adds or replaces a named template (GGUF `tokenizer.chat_template.<name>`).
    pub fn insert(&mut self, name: impl Into<String>, source: impl Into<String>) {
        self.by_name.insert(name.into(), source.into());
    }

    /// Parses the `chat_template` value of `tokenizer_config.json`: a string, or a list of
    /// `{"name": …, "template": …}`.
    pub fn from_config_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::String(source) => Ok(Self::single(source.as_str())),
            Value::Array(entries) => {
                let mut templates = Self::default();
                for (i, entry) in entries.iter().enumerate() {
                    let field = |key: &str| {
                        entry
                            .get(key)
                            .and_then(Value::as_str)
                            .ok_or_else(|| format!("chat_template[{i}] needs a string `{key}`"))
                    };
                    templates.insert(field("name")?, field("template")?);
                }
                Ok(templates)
            }
            other => Err(format!(
                "`chat_template` must be a string or a list of {{name, template}}, found {other}"
            )),
        }
    }

    /// The source for a request: `name` if given (None when the model has no such template),
    /// else `tool_use` when the request has tools, else `default`.
    pub fn select(&self, name: Option<&str>, has_tools: bool) -> Option<&str> {
        let key = match name {
            Some(name) => name,
            None if has_tools && self.by_name.contains_key(TOOL_USE) => TOOL_USE,
            None => DEFAULT,
        };
        self.by_name.get(key).map(String::as_str)
    }

    /// The default template, if any.
    pub fn default_template(&self) -> Option<&str> {
        self.select(None, false)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Template names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_value_is_the_default() {
        let templates = ChatTemplates::from_config_value(&Value::from("T")).expect("valid");
        assert_eq!(templates.select(None, false), Some("T"));
        assert_eq!(templates.select(None, true), Some("T"));
    }

    #[test]
    fn named_list_prefers_tool_use_with_tools() {
        let value = serde_json::json!([
            {"name": "default", "template": "D"},
            {"name": "tool_use", "template": "U"},
            {"name": "rag", "template": "R"}
        ]);
        let templates = ChatTemplates::from_config_value(&value).expect("valid");
        assert_eq!(templates.select(None, false), Some("D"));
        assert_eq!(templates.select(None, true), Some("U"));
        assert_eq!(templates.select(Some("rag"), true), Some("R"));
        assert_eq!(templates.select(Some("missing"), false), None);
    }

    #[test]
    fn malformed_entry_is_an_error() {
        let value = serde_json::json!([{"name": "default"}]);
        let err = ChatTemplates::from_config_value(&value).expect_err("must fail");
        assert!(err.contains("template"), "{err}");
    }
}
