//! [`IncrementalDecoder`]: streaming detokenization with vLLM's prefix/read offsets.
//!
//! Invariants:
//! - Each step returns only text not returned before, and the concatenation of all steps plus
//!   [`IncrementalDecoder::finish`] equals `decode(all ids)` (for a decoder started without a
//!   prompt; with a prompt, equals the part of `decode(prompt + generated)` after the prompt).
//! - Half a UTF-8 character is never emitted: while the decoded text ends in U+FFFD (a byte
//!   sequence still incomplete), the new tokens are held back.
//! - Text is always decoded from a window that starts a few tokens back (`prefix_offset`), so
//!   decoders that depend on context (SentencePiece's leading-space strip, byte fallback) give
//!   the same text as a full decode.

use ferrum_types::TokenId;

use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// How many prompt tokens give context to the first generated token (vLLM uses 5 too).
const PROMPT_CONTEXT_TOKENS: usize = 5;

const REPLACEMENT: char = '\u{FFFD}';

/// Turns a growing list of token ids into text, a piece at a time.
#[derive(Debug, Clone)]
pub struct IncrementalDecoder {
    /// Context ids (end of the prompt) followed by every generated id.
    ids: Vec<TokenId>,
    /// Start of the decode window: text before it was emitted long ago.
    prefix_offset: usize,
    /// End of the text already emitted.
    read_offset: usize,
    /// How many leading `ids` are prompt context rather than output.
    context_len: usize,
    skip_special_tokens: bool,
}

impl IncrementalDecoder {
    /// A decoder for a sequence that starts with the first generated token.
    pub fn new(skip_special_tokens: bool) -> Self {
        Self::with_prompt(&[], skip_special_tokens)
    }

    /// A decoder whose first token follows `prompt_ids`: the prompt's last tokens give context,
    /// so a leading space of the first generated word is kept (as vLLM does).
    pub fn with_prompt(prompt_ids: &[TokenId], skip_special_tokens: bool) -> Self {
        let context = &prompt_ids[prompt_ids.len().saturating_sub(PROMPT_CONTEXT_TOKENS)..];
        Self {
            ids: context.to_vec(),
            prefix_offset: 0,
            read_offset: context.len(),
            context_len: context.len(),
            skip_special_tokens,
        }
    }

    /// Appends `new_ids` and returns the newly completed text (possibly empty).
    pub fn step(&mut self, tokenizer: &Tokenizer, new_ids: &[TokenId]) -> Result<String> {
        self.ids.extend_from_slice(new_ids);
        let prefix_text = self.decode(tokenizer, self.prefix_offset, self.read_offset)?;
        let full_text = self.decode(tokenizer, self.prefix_offset, self.ids.len())?;
        if full_text.len() <= prefix_text.len() || full_text.ends_with(REPLACEMENT) {
            return Ok(String::new());
        }
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        Ok(suffix_after(&full_text, &prefix_text).to_string())
    }

    /// Returns whatever is still held back (an incomplete character becomes U+FFFD) and marks
    /// everything as emitted. Call it once the sequence has finished.
    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<String> {
        let prefix_text = self.decode(tokenizer, self.prefix_offset, self.read_offset)?;
        let full_text = self.decode(tokenizer, self.prefix_offset, self.ids.len())?;
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        Ok(suffix_after(&full_text, &prefix_text).to_string())
    }

    /// The generated ids seen so far (prompt context excluded).
    pub fn generated_ids(&self) -> &[TokenId] {
        &self.ids[self.context_len..]
    }

    fn decode(&self, tokenizer: &Tokenizer, start: usize, end: usize) -> Result<String> {
        if start >= end {
            return Ok(String::new());
        }
        tokenizer.decode(&self.ids[start..end], self.skip_special_tokens)
    }
}

/// The part of `full` after `prefix`. When decoding the longer window changed earlier text
/// (it should not, but decoders are third-party code), the common prefix is skipped instead, cut
/// at a character boundary.
fn suffix_after<'a>(full: &'a str, prefix: &str) -> &'a str {
    if let Some(rest) = full.strip_prefix(prefix) {
        return rest;
    }
    let common = full
        .char_indices()
        .zip(prefix.chars())
        .find(|((_, a), b)| a != b)
        .map_or(prefix.len().min(full.len()), |((at, _), _)| at);
    let mut at = common;
    while !full.is_char_boundary(at) {
        at -= 1;
    }
    &full[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_after_plain_prefix() {
        assert_eq!(suffix_after("hello world", "hello"), " world");
        assert_eq!(suffix_after("héllo", "hé"), "llo");
    }

    #[test]
    fn suffix_after_changed_prefix_keeps_the_difference() {
        assert_eq!(suffix_after("ab€d", "ab\u{FFFD}"), "€d");
        assert_eq!(suffix_after("abc", "abcd"), "");
    }
}
