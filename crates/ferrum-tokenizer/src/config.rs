//! `tokenizer_config.json` and `special_tokens_map.json`: special-token strings, BOS/EOS flags,
//! added tokens and chat templates.
//!
//! Invariant: parsing is lenient about what it does not use (unknown keys are ignored) and strict
//! about what it does: a `bos_token` that is neither a string, an AddedToken dict nor null is an
//! error naming the key, not a silently missing BOS.

use std::path::Path;

use serde_json::Value;

use ferrum_types::TokenId;

use crate::error::{Result, TokenizerError};
use crate::template::ChatTemplates;

const CONFIG_FILE: &str = "tokenizer_config.json";
const SPECIAL_MAP_FILE: &str = "special_tokens_map.json";

/// What the tokenizer needs from `tokenizer_config.json`.
#[derive(Debug, Clone, Default)]
pub struct TokenizerConfig {
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub unk_token: Option<String>,
    pub pad_token: Option<String>,
    /// `None` when the file does not say; the tokenizer source decides then.
    pub add_bos_token: Option<bool>,
    pub add_eos_token: Option<bool>,
    pub chat_templates: ChatTemplates,
    /// `added_tokens_decoder`, sorted by id. Needed for `tokenizer.model` sources, whose added
    /// tokens live only here.
    pub added_tokens: Vec<AddedTokenEntry>,
    pub clean_up_tokenization_spaces: Option<bool>,
}

/// One entry of `added_tokens_decoder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedTokenEntry {
    pub id: TokenId,
    pub content: String,
    pub special: bool,
}

impl TokenizerConfig {
    /// Parses the contents of a `tokenizer_config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let root: Value = serde_json::from_slice(bytes)
            .map_err(|e| TokenizerError::config(CONFIG_FILE, e.to_string()))?;
        let Value::Object(map) = &root else {
            return Err(TokenizerError::config(
                CONFIG_FILE,
                "top level is not an object",
            ));
        };
        let token = |key: &str| token_string(map.get(key), key, CONFIG_FILE);
        let flag = |key: &str| match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(TokenizerError::config(
                CONFIG_FILE,
                format!("`{key}` must be a boolean, found {other}"),
            )),
        };
        let chat_templates = match map.get("chat_template") {
            None | Some(Value::Null) => ChatTemplates::default(),
            Some(value) => ChatTemplates::from_config_value(value)
                .map_err(|message| TokenizerError::config(CONFIG_FILE, message))?,
        };
        Ok(Self {
            bos_token: token("bos_token")?,
            eos_token: token("eos_token")?,
            unk_token: token("unk_token")?,
            pad_token: token("pad_token")?,
            add_bos_token: flag("add_bos_token")?,
            add_eos_token: flag("add_eos_token")?,
            chat_templates,
            added_tokens: added_tokens(map.get("added_tokens_decoder"))?,
            clean_up_tokenization_spaces: flag("clean_up_tokenization_spaces")?,
        })
    }

    /// Reads and parses a `tokenizer_config.json` file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| TokenizerError::io(path, e))?;
        Self::from_json(&bytes)
    }

    /// Fills the roles this config leaves empty from a `special_tokens_map.json` (older
    /// checkpoints keep BOS/EOS only there).
    pub fn fill_from_special_tokens_map(&mut self, bytes: &[u8]) -> Result<()> {
        let root: Value = serde_json::from_slice(bytes)
            .map_err(|e| TokenizerError::config(SPECIAL_MAP_FILE, e.to_string()))?;
        let Value::Object(map) = &root else {
            return Err(TokenizerError::config(
                SPECIAL_MAP_FILE,
                "top level is not an object",
            ));
        };
        for (key, slot) in [
            ("bos_token", &mut self.bos_token),
            ("eos_token", &mut self.eos_token),
            ("unk_token", &mut self.unk_token),
            ("pad_token", &mut self.pad_token),
        ] {
            if slot.is_none() {
                *slot = token_string(map.get(key), key, SPECIAL_MAP_FILE)?;
            }
        }
        Ok(())
    }
}

/// A special token written either as a plain string or as an AddedToken dict (`{"content": …}`).
fn token_string(value: Option<&Value>, key: &str, file: &str) -> Result<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Object(dict)) => match dict.get("content") {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            _ => Err(TokenizerError::config(
                file,
                format!("`{key}` is a dict without a string `content`"),
            )),
        },
        Some(other) => Err(TokenizerError::config(
            file,
            format!("`{key}` must be a string or an AddedToken dict, found {other}"),
        )),
    }
}

fn added_tokens(value: Option<&Value>) -> Result<Vec<AddedTokenEntry>> {
    let Some(Value::Object(decoder)) = value else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::with_capacity(decoder.len());
    for (id, token) in decoder {
        let bad = |what: &str| {
            TokenizerError::config(CONFIG_FILE, format!("added_tokens_decoder[{id}]: {what}"))
        };
        let id: TokenId = id.parse().map_err(|_| bad("key is not a token id"))?;
        let content = token
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("missing string `content`"))?;
        let special = token
            .get("special")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        entries.push(AddedTokenEntry {
            id,
            content: content.to_string(),
            special,
        });
    }
    entries.sort_by_key(|entry| entry.id);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_as_strings_dicts_and_null() {
        let config = TokenizerConfig::from_json(
            br#"{
                "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
                "eos_token": "</s>",
                "pad_token": null,
                "add_bos_token": true,
                "unknown_key": [1, 2, 3]
            }"#,
        )
        .expect("valid config");
        assert_eq!(config.bos_token.as_deref(), Some("<s>"));
        assert_eq!(config.eos_token.as_deref(), Some("</s>"));
        assert_eq!(config.pad_token, None);
        assert_eq!(config.add_bos_token, Some(true));
        assert_eq!(config.add_eos_token, None);
    }

    #[test]
    fn bad_token_type_names_the_key() {
        let err = TokenizerConfig::from_json(br#"{"eos_token": 5}"#).expect_err("must fail");
        assert!(err.to_string().contains("eos_token"), "{err}");
    }

    #[test]
    fn added_tokens_decoder_sorted_by_id() {
        let config = TokenizerConfig::from_json(
            br#"{"added_tokens_decoder": {
                "32001": {"content": "<|b|>", "special": false},
                "32000": {"content": "<|a|>", "special": true}
            }}"#,
        )
        .expect("valid config");
        let ids: Vec<_> = config
            .added_tokens
            .iter()
            .map(|t| (t.id, t.special))
            .collect();
        assert_eq!(ids, vec![(32000, true), (32001, false)]);
    }

    #[test]
    fn special_tokens_map_fills_only_missing_roles() {
        let mut config = TokenizerConfig::from_json(br#"{"eos_token": "<eos>"}"#).expect("valid");
        config
            .fill_from_special_tokens_map(br#"{"bos_token": "<bos>", "eos_token": "<other>"}"#)
            .expect("valid map");
        assert_eq!(config.bos_token.as_deref(), Some("<bos>"));
        assert_eq!(config.eos_token.as_deref(), Some("<eos>"));
    }
}
