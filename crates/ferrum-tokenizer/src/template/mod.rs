//! Chat templates: [`ChatTemplate`] renders a conversation to the prompt text exactly as
//! transformers' `apply_chat_template(..., tokenize=False)` does.
//!
//! Invariants:
//! - The template sees `messages`, `tools`, `documents` and `add_generation_prompt` (tools and
//!   documents are `none` when absent, as in transformers), the special-token strings
//!   (`bos_token`, `eos_token`), and every extra keyword (`enable_thinking`, `date_string` …).
//!   Extra keywords override the special tokens but not the four fixed names.
//! - A template is compiled once and rendered many times; rendering is read-only, so one
//!   `ChatTemplate` serves concurrent requests.
//! - Failures are typed: syntax errors at construction, `raise_exception` as
//!   [`TokenizerError::TemplateRaised`], budget overruns as their own variants.

mod catalog;
mod environment;
mod inputs;
mod pyfmt;
mod pyjson;
mod strftime;

use std::io;

use minijinja::value::Value;
use minijinja::{Environment, ErrorKind};
use serde_json::Map;

pub use catalog::ChatTemplates;

use crate::error::{Result, TokenizerError};
use environment::{build_environment, RaisedByTemplate, TEMPLATE_NAME};

/// Bounds on one rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Template instructions one rendering may execute.
    pub fuel: u64,
    /// Bytes of rendered output.
    pub max_output_bytes: usize,
}

impl Default for TemplateLimits {
    /// Far above what real templates need for long conversations (a Qwen3 rendering of a
    /// hundred turns with tools costs tens of thousands of instructions).
    fn default() -> Self {
        Self {
            fuel: 50_000_000,
            max_output_bytes: 64 << 20,
        }
    }
}

/// What one rendering gets.
#[derive(Debug, Clone, Copy)]
pub struct ChatTemplateInput<'a> {
    /// A JSON list of message objects (`content` a string or a list of parts).
    pub messages: &'a serde_json::Value,
    /// A JSON list of tool schemas.
    pub tools: Option<&'a serde_json::Value>,
    /// A JSON list of documents (retrieval-augmented templates).
    pub documents: Option<&'a serde_json::Value>,
    pub add_generation_prompt: bool,
    /// Extra template variables (`enable_thinking`, `chat_template_kwargs` …).
    pub extra: Option<&'a Map<String, serde_json::Value>>,
}

impl<'a> ChatTemplateInput<'a> {
    /// Messages only, no generation prompt; set the other fields directly.
    pub fn new(messages: &'a serde_json::Value) -> Self {
        Self {
            messages,
            tools: None,
            documents: None,
            add_generation_prompt: false,
            extra: None,
        }
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// Special-token strings offered to the template (`bos_token`, `eos_token`, …).
    special_tokens: Vec<(String, String)>,
    limits: TemplateLimits,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("special_tokens", &self.special_tokens)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source` with the default limits.
    pub fn new(source: &str, bos_token: Option<String>, eos_token: Option<String>) -> Result<Self> {
        Self::with_limits(source, bos_token, eos_token, TemplateLimits::default())
    }

    /// Compiles `source`; `bos_token`/`eos_token` are the strings the template sees.
    pub fn with_limits(
        source: &str,
        bos_token: Option<String>,
        eos_token: Option<String>,
        limits: TemplateLimits,
    ) -> Result<Self> {
        let env = build_environment(source, limits.fuel)
            .map_err(|e| TokenizerError::TemplateSyntax(describe(&e)))?;
        let special_tokens = [("bos_token", bos_token), ("eos_token", eos_token)]
            .into_iter()
            .filter_map(|(name, token)| token.map(|token| (name.to_string(), token)))
            .collect();
        Ok(Self {
            env,
            special_tokens,
            limits,
        })
    }

    /// Offers one more special-token string to the template (`unk_token`, `pad_token` …).
    pub fn set_special_token(&mut self, name: &str, token: &str) {
        self.special_tokens.retain(|(existing, _)| existing != name);
        self.special_tokens
            .push((name.to_string(), token.to_string()));
    }

    /// Renders the prompt text.
    pub fn render(&self, input: &ChatTemplateInput<'_>) -> Result<String> {
        let messages = inputs::prepare_messages(input.messages)?;
        inputs::check_object_list(input.tools, "tools")?;
        inputs::check_object_list(input.documents, "documents")?;

        let mut context: Vec<(String, Value)> = self
            .special_tokens
            .iter()
            .map(|(name, token)| (name.clone(), Value::from(token.as_str())))
            .collect();
        for (name, value) in input.extra.into_iter().flatten() {
            context.push((name.clone(), Value::from_serialize(value)));
        }
        let optional = |value: Option<&serde_json::Value>| {
            value.map_or_else(|| Value::from(()), Value::from_serialize)
        };
        context.extend([
            ("messages".to_string(), Value::from_serialize(&messages)),
            ("tools".to_string(), optional(input.tools)),
            ("documents".to_string(), optional(input.documents)),
            (
                "add_generation_prompt".to_string(),
                Value::from(input.add_generation_prompt),
            ),
        ]);
        // Later entries win, which gives the precedence in the module invariants.
        let context: Value = context.into_iter().collect();

        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| TokenizerError::TemplateRender(describe(&e)))?;
        let mut out = LimitedOutput::new(self.limits.max_output_bytes);
        match template.render_captured_to(context, &mut out) {
            Ok(_) => String::from_utf8(out.bytes)
                .map_err(|_| TokenizerError::TemplateRender("output is not UTF-8".into())),
            Err(_) if out.exceeded => Err(TokenizerError::TemplateOutputTooLarge {
                limit: self.limits.max_output_bytes,
            }),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// Maps a minijinja failure to the crate error.
fn classify(error: &minijinja::Error) -> TokenizerError {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(raised) = cause.downcast_ref::<RaisedByTemplate>() {
            return TokenizerError::TemplateRaised(raised.0.clone());
        }
        source = cause.source();
    }
    match error.kind() {
        ErrorKind::OutOfFuel => TokenizerError::TemplateFuelExhausted,
        ErrorKind::SyntaxError => TokenizerError::TemplateSyntax(describe(error)),
        _ => TokenizerError::TemplateRender(describe(error)),
    }
}

/// The error's kind, message and template line (debug dumps are off, so this stays short).
fn describe(error: &minijinja::Error) -> String {
    error.to_string()
}

/// Collects the rendered bytes and refuses writes past the limit.
struct LimitedOutput {
    bytes: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl LimitedOutput {
    fn new(limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            limit,
            exceeded: false,
        }
    }
}

impl io::Write for LimitedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("chat template output limit reached"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
