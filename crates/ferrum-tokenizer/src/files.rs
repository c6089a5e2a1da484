//! [`TokenizerFiles`]: which tokenizer files a model directory has, and loading them.
//!
//! Invariants:
//! - `tokenizer.json` wins over `tokenizer.model` (it is what transformers' fast tokenizer uses).
//! - A `chat_template.jinja` file wins over `chat_template.json`, which wins over the
//!   `chat_template` of `tokenizer_config.json` (transformers' order); named templates from the
//!   config are kept beside it.
//! - Missing optional files are not errors; unreadable or malformed ones are.

use std::path::{Path, PathBuf};

use crate::config::TokenizerConfig;
use crate::error::{Result, TokenizerError};
use crate::template::ChatTemplates;
use crate::tokenizer::Tokenizer;

const TOKENIZER_JSON: &str = "tokenizer.json";
const SENTENCEPIECE_MODEL: &str = "tokenizer.model";
const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
const SPECIAL_TOKENS_MAP: &str = "special_tokens_map.json";
const CHAT_TEMPLATE_JINJA: &str = "chat_template.jinja";
const CHAT_TEMPLATE_JSON: &str = "chat_template.json";

/// Tokenizer-related files found in a model directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerFiles {
    pub tokenizer_json: Option<PathBuf>,
    pub sentencepiece_model: Option<PathBuf>,
    pub tokenizer_config: Option<PathBuf>,
    pub special_tokens_map: Option<PathBuf>,
    pub chat_template_jinja: Option<PathBuf>,
    pub chat_template_json: Option<PathBuf>,
}

/// A loaded tokenizer with its configuration and chat templates.
#[derive(Debug, Clone)]
pub struct LoadedTokenizer {
    pub tokenizer: Tokenizer,
    pub config: TokenizerConfig,
    pub chat_templates: ChatTemplates,
}

fn existing(dir: &Path, name: &str) -> Option<PathBuf> {
    let path = dir.join(name);
    path.is_file().then_some(path)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| TokenizerError::io(path, e))
}

impl TokenizerFiles {
    /// Looks for the tokenizer files in `dir`; fails when it has neither `tokenizer.json` nor
    /// `tokenizer.model`.
    pub fn discover(dir: &Path) -> Result<Self> {
        let files = Self {
            tokenizer_json: existing(dir, TOKENIZER_JSON),
            sentencepiece_model: existing(dir, SENTENCEPIECE_MODEL),
            tokenizer_config: existing(dir, TOKENIZER_CONFIG),
            special_tokens_map: existing(dir, SPECIAL_TOKENS_MAP),
            chat_template_jinja: existing(dir, CHAT_TEMPLATE_JINJA),
            chat_template_json: existing(dir, CHAT_TEMPLATE_JSON),
        };
        if files.tokenizer_json.is_none() && files.sentencepiece_model.is_none() {
            return Err(TokenizerError::NotFound(dir.to_path_buf()));
        }
        Ok(files)
    }

    /// Reads the configuration, builds the tokenizer and collects the chat templates.
    pub fn load(&self) -> Result<LoadedTokenizer> {
        let mut config = match &self.tokenizer_config {
            Some(path) => TokenizerConfig::from_file(path)?,
            None => TokenizerConfig::default(),
        };
        if let Some(path) = &self.special_tokens_map {
            config.fill_from_special_tokens_map(&read(path)?)?;
        }
        let tokenizer = match (&self.tokenizer_json, &self.sentencepiece_model) {
            (Some(json), _) => Tokenizer::from_tokenizer_json_file(json, &config)?,
            (None, Some(model)) => Tokenizer::from_sentencepiece_file(model, &config)?,
            (None, None) => {
                let dir = self
                    .tokenizer_config
                    .as_deref()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("."));
                return Err(TokenizerError::NotFound(dir.to_path_buf()));
            }
        };
        let mut chat_templates = config.chat_templates.clone();
        if let Some(path) = &self.chat_template_json {
            if let Some(source) = chat_template_from_json(&read(path)?)? {
                chat_templates.set_default(source);
            }
        }
        if let Some(path) = &self.chat_template_jinja {
            let source = String::from_utf8(read(path)?).map_err(|_| {
                TokenizerError::config(CHAT_TEMPLATE_JINJA, "the file is not UTF-8")
            })?;
            chat_templates.set_default(source);
        }
        Ok(LoadedTokenizer {
            tokenizer,
            config,
            chat_templates,
        })
    }
}

/// The `chat_template` string of a `chat_template.json` file (`{"chat_template": "…"}`).
fn chat_template_from_json(bytes: &[u8]) -> Result<Option<String>> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| TokenizerError::config(CHAT_TEMPLATE_JSON, e.to_string()))?;
    match value.get("chat_template") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(source)) => Ok(Some(source.clone())),
        Some(_) => Err(TokenizerError::config(
            CHAT_TEMPLATE_JSON,
            "`chat_template` must be a string",
        )),
    }
}
