//! One choice of a request: its engine stream and the text pipeline over it.
//!
//! Pipeline per engine output: ids → incremental detokenizer → stop-string matcher →
//! reasoning parser → tool-call parser → [`Delta`].
//!
//! Invariants:
//! - The concatenation of every delta's text equals the non-streamed text: streaming and
//!   non-streaming share this one pipeline.
//! - A stop-string match drops the engine stream at once, which aborts the request in the
//!   engine and frees its blocks.
//! - Once finished, a choice emits nothing more.
//! - With a reasoning parser, the prompt's tail is decoded once, at the first output, to learn
//!   whether the template left a `<think>` block open for the output to continue.

use std::time::Instant;

use ferrum_config::{ReasoningParserKind, ToolParserKind};
use ferrum_tokenizer::{IncrementalDecoder, Tokenizer};
use ferrum_types::{EngineOutput, FinishReason as EngineFinish, TokenId};
use serde_json::Value;

use super::reasoning::{prompt_opens_reasoning, ReasoningParser};
use super::stop::StopMatcher;
use super::tools::{ToolCall, ToolParser};
use crate::engine::OutputStream;
use crate::error::ApiError;

/// Prompt tokens decoded to look for an open `<think>` at its end (enough for the tag and the
/// whitespace after it even where the tag is several tokens).
const PROMPT_TAIL_TOKENS: usize = 8;

/// Why a choice ended, as OpenAI spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    Abort,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::Abort => "abort",
        }
    }
}

/// One generated token's log-probability, with its text.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub top: Vec<(String, f32)>,
}

/// What one engine output adds to a choice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    pub index: usize,
    pub content: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCall>,
    /// The choice-wide index of `tool_calls[0]`: streamed chunks number calls from here, so that
    /// clients which merge deltas by index keep calls from different chunks apart.
    pub first_tool_call_index: usize,
    pub logprobs: Vec<TokenLogprob>,
    pub finish_reason: Option<FinishReason>,
    /// The stop string or stop token id that ended the choice.
    pub stop_reason: Option<Value>,
    /// How many generated tokens this delta covers. A streamed response sends one chunk per
    /// engine output that produced tokens, even when their text is still held back (half a
    /// character, a possible stop string, a tool call being parsed), so that clients see the
    /// model's pace as vLLM's stream shows it.
    pub new_tokens: usize,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
            && self.reasoning.is_empty()
            && self.tool_calls.is_empty()
            && self.logprobs.is_empty()
            && self.finish_reason.is_none()
            && self.new_tokens == 0
    }
}

/// How a choice's text is processed.
#[derive(Debug, Clone, Default)]
pub struct ChoiceConfig {
    pub stop: Vec<String>,
    pub include_stop_str_in_output: bool,
    pub skip_special_tokens: bool,
    pub reasoning: Option<ReasoningParserKind>,
    pub tools: Option<ToolParserKind>,
    pub want_logprobs: bool,
    /// The request's own stop token ids: only these are reported as `stop_reason` (an EOS
    /// token is not, as in vLLM).
    pub stop_token_ids: Vec<TokenId>,
}

pub struct ChoiceState {
    pub index: usize,
    /// `None` once the choice has finished (dropping it aborts the engine request).
    pub stream: Option<OutputStream>,
    decoder: IncrementalDecoder,
    stop: StopMatcher,
    reasoning: Option<ReasoningParser>,
    /// The prompt's last tokens, until the first output has checked them for an open `<think>`.
    prompt_tail: Option<(ReasoningParserKind, Vec<TokenId>)>,
    tools: Option<ToolParser>,
    want_logprobs: bool,
    stop_token_ids: Vec<TokenId>,
    pub finish_reason: Option<FinishReason>,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    pub made_tool_calls: bool,
    /// Tool calls already handed out in deltas.
    tool_calls_sent: usize,
    pub first_token_at: Option<Instant>,
    pub last_token_at: Option<Instant>,
}

impl ChoiceState {
    pub fn new(
        index: usize,
        stream: OutputStream,
        prompt: &[TokenId],
        config: &ChoiceConfig,
    ) -> Self {
        Self {
            index,
            stream: Some(stream),
            decoder: IncrementalDecoder::with_prompt(prompt, config.skip_special_tokens),
            stop: StopMatcher::new(config.stop.clone(), config.include_stop_str_in_output),
            reasoning: config.reasoning.map(ReasoningParser::new),
            prompt_tail: config.reasoning.map(|kind| {
                let start = prompt.len().saturating_sub(PROMPT_TAIL_TOKENS);
                (kind, prompt[start..].to_vec())
            }),
            tools: config.tools.map(ToolParser::new),
            want_logprobs: config.want_logprobs,
            stop_token_ids: config.stop_token_ids.clone(),
            finish_reason: None,
            prompt_tokens: prompt.len(),
            cached_tokens: 0,
            completion_tokens: 0,
            made_tool_calls: false,
            tool_calls_sent: 0,
            first_token_at: None,
            last_token_at: None,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finish_reason.is_some()
    }

    /// Ends the choice without more output (client gone, shutdown, engine failure).
    pub fn abort(&mut self) {
        self.stream = None;
        if self.finish_reason.is_none() {
            self.finish_reason = Some(FinishReason::Abort);
        }
    }

    /// Runs one engine output through the pipeline.
    pub fn on_output(
        &mut self,
        out: EngineOutput,
        tokenizer: &Tokenizer,
    ) -> Result<Delta, ApiError> {
        if self.is_finished() {
            return Ok(Delta {
                index: self.index,
                ..Delta::default()
            });
        }
        if out.finish_reason == Some(EngineFinish::Error) {
            self.abort();
            return Err(ApiError::Engine(
                out.error
                    .unwrap_or_else(|| "the request failed in the engine".into()),
            ));
        }
        if let Some((kind, tail)) = self.prompt_tail.take() {
            // Special tokens kept: `<think>` is one in some vocabularies.
            if tokenizer
                .decode(&tail, false)
                .is_ok_and(|text| prompt_opens_reasoning(&text))
            {
                self.reasoning = Some(ReasoningParser::in_reasoning(kind));
            }
        }
        let now = Instant::now();
        if !out.new_token_ids.is_empty() {
            self.first_token_at.get_or_insert(now);
            self.last_token_at = Some(now);
        }
        self.prompt_tokens = out.num_prompt_tokens.max(self.prompt_tokens);
        self.cached_tokens = out.num_cached_tokens;
        let new_tokens = out.new_token_ids.len();
        self.completion_tokens += new_tokens;
        let decode_err = |e: ferrum_tokenizer::TokenizerError| {
            ApiError::Internal(format!("detokenization failed: {e}"))
        };
        let mut text = self
            .decoder
            .step(tokenizer, &out.new_token_ids)
            .map_err(decode_err)?;
        if out.finish_reason.is_some() {
            text.push_str(&self.decoder.finish(tokenizer).map_err(decode_err)?);
        }
        let logprobs = if self.want_logprobs {
            out.new_logprobs
                .iter()
                .map(|lp| TokenLogprob {
                    token: token_text(tokenizer, lp.token_id),
                    logprob: lp.logprob,
                    top: lp
                        .top
                        .iter()
                        .map(|&(id, p)| (token_text(tokenizer, id), p))
                        .collect(),
                })
                .collect()
        } else {
            Vec::new()
        };

        let step = self.stop.push(&text);
        let mut text = step.text;
        let mut stop_reason = None;
        let finish = if let Some(stop) = step.matched {
            // Dropping the stream aborts the engine request: nothing after a stop string.
            self.stream = None;
            stop_reason = Some(Value::String(stop));
            Some(FinishReason::Stop)
        } else if let Some(reason) = out.finish_reason {
            text.push_str(&self.stop.finish());
            self.stream = None;
            stop_reason = out
                .stop_token_id
                .filter(|id| self.stop_token_ids.contains(id))
                .map(Value::from);
            Some(match reason {
                EngineFinish::Stop => FinishReason::Stop,
                EngineFinish::Length => FinishReason::Length,
                EngineFinish::Abort | EngineFinish::Error => FinishReason::Abort,
            })
        } else {
            None
        };

        let mut delta = Delta {
            index: self.index,
            logprobs,
            stop_reason,
            new_tokens,
            ..Delta::default()
        };
        let (mut reasoning, mut content) = match &mut self.reasoning {
            Some(parser) => {
                let mut split = parser.push(&text);
                if finish.is_some() {
                    let rest = parser.finish();
                    split.reasoning.push_str(&rest.reasoning);
                    split.content.push_str(&rest.content);
                }
                (split.reasoning, split.content)
            }
            None => (String::new(), text),
        };
        if let Some(parser) = &mut self.tools {
            let mut step = parser.push(&content);
            if finish.is_some() {
                let rest = parser.finish();
                step.content.push_str(&rest.content);
                step.calls.extend(rest.calls);
            }
            content = step.content;
            self.made_tool_calls |= !step.calls.is_empty();
            delta.first_tool_call_index = self.tool_calls_sent;
            self.tool_calls_sent += step.calls.len();
            delta.tool_calls = step.calls;
        }
        delta.content = std::mem::take(&mut content);
        delta.reasoning = std::mem::take(&mut reasoning);
        if let Some(reason) = finish {
            let reason = if reason == FinishReason::Stop && self.made_tool_calls {
                FinishReason::ToolCalls
            } else {
                reason
            };
            self.finish_reason = Some(reason);
            delta.finish_reason = Some(reason);
        }
        Ok(delta)
    }
}

/// A token's text for log-probabilities (special tokens shown as written).
fn token_text(tokenizer: &Tokenizer, id: TokenId) -> String {
    tokenizer.decode(&[id], false).unwrap_or_default()
}
