//! Reasoning parsers: the `<think>…</think>` part of the output goes to `reasoning_content`
//! (and `reasoning`), the rest to `content`, while streaming as well as at the end.
//!
//! Invariants:
//! - Partial tags are held back, never shown in either field.
//! - `qwen3`: only output that begins (after whitespace) with `<think>` has reasoning; output
//!   without it (thinking disabled in the template) is all content.
//! - `deepseek_r1`: the template may have opened `<think>` already, so output is reasoning until
//!   `</think>` even without an opening tag.
//! - Either kind: when the prompt itself ends with an open `<think>` (thinking-only templates
//!   such as Qwen3-*-Thinking-2507's end the generation prompt with it), the output starts as
//!   reasoning, as in vLLM, where text before `</think>` is then reasoning.

use ferrum_config::ReasoningParserKind;

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Split {
    pub reasoning: String,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not yet known whether the output opens with `<think>`.
    Start,
    Reasoning,
    Content,
}

#[derive(Debug, Clone)]
pub struct ReasoningParser {
    kind: ReasoningParserKind,
    state: State,
    held: String,
}

impl ReasoningParser {
    pub fn new(kind: ReasoningParserKind) -> Self {
        Self {
            kind,
            state: State::Start,
            held: String::new(),
        }
    }

    /// A parser for output whose prompt already opened the reasoning block.
    pub fn in_reasoning(kind: ReasoningParserKind) -> Self {
        Self {
            state: State::Reasoning,
            ..Self::new(kind)
        }
    }

    pub fn push(&mut self, text: &str) -> Split {
        let mut buf = std::mem::take(&mut self.held);
        buf.push_str(text);
        let mut out = Split::default();
        loop {
            match self.state {
                State::Start => {
                    let trimmed = buf.trim_start();
                    if let Some(rest) = trimmed.strip_prefix(OPEN) {
                        buf = rest.to_string();
                        self.state = State::Reasoning;
                    } else if OPEN.starts_with(trimmed) {
                        self.held = buf; // still could become `<think>`
                        return out;
                    } else {
                        self.state = match self.kind {
                            ReasoningParserKind::Qwen3 => State::Content,
                            ReasoningParserKind::DeepSeekR1 => State::Reasoning,
                        };
                    }
                }
                State::Reasoning => {
                    if let Some(pos) = buf.find(CLOSE) {
                        out.reasoning.push_str(&buf[..pos]);
                        buf = buf[pos + CLOSE.len()..].to_string();
                        self.state = State::Content;
                    } else {
                        let keep = partial_tag_suffix(&buf, CLOSE);
                        let split = buf.len() - keep;
                        out.reasoning.push_str(&buf[..split]);
                        self.held = buf[split..].to_string();
                        return out;
                    }
                }
                State::Content => {
                    out.content.push_str(&buf);
                    return out;
                }
            }
        }
    }

    /// The output ended: text still held back is released where it was going.
    pub fn finish(&mut self) -> Split {
        let held = std::mem::take(&mut self.held);
        match self.state {
            State::Reasoning => Split {
                reasoning: held,
                content: String::new(),
            },
            _ => Split {
                reasoning: String::new(),
                content: held,
            },
        }
    }
}

/// Whether a prompt (its decoded tail is enough) ends with an opening `<think>`, trailing
/// whitespace aside: the output then continues the reasoning block.
pub fn prompt_opens_reasoning(prompt_tail: &str) -> bool {
    prompt_tail.trim_end().ends_with(OPEN)
}

/// Length of the longest suffix of `buf` that is a proper prefix of `tag`.
pub(crate) fn partial_tag_suffix(buf: &str, tag: &str) -> usize {
    let max = (tag.len() - 1).min(buf.len());
    (1..=max)
        .rev()
        .find(|&len| {
            let start = buf.len() - len;
            buf.is_char_boundary(start) && tag.as_bytes().starts_with(&buf.as_bytes()[start..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: ReasoningParserKind, pieces: &[&str]) -> Split {
        let mut p = ReasoningParser::new(kind);
        let mut all = Split::default();
        for piece in pieces {
            let s = p.push(piece);
            all.reasoning.push_str(&s.reasoning);
            all.content.push_str(&s.content);
        }
        let s = p.finish();
        all.reasoning.push_str(&s.reasoning);
        all.content.push_str(&s.content);
        all
    }

    #[test]
    fn qwen3_splits_streamed_tags() {
        let s = run(
            ReasoningParserKind::Qwen3,
            &["<th", "ink>\nhm", "m</th", "ink>\n\nAnswer"],
        );
        assert_eq!(s.reasoning, "\nhmm");
        assert_eq!(s.content, "\n\nAnswer");
    }

    #[test]
    fn qwen3_without_think_is_content() {
        let s = run(ReasoningParserKind::Qwen3, &["Hello", " </think> x"]);
        assert_eq!(s.reasoning, "");
        assert_eq!(s.content, "Hello </think> x");
        let s = run(ReasoningParserKind::Qwen3, &["<"]);
        assert_eq!(s.content, "<");
    }

    #[test]
    fn unfinished_reasoning_stays_reasoning() {
        let s = run(ReasoningParserKind::Qwen3, &["<think>still thinking</thi"]);
        assert_eq!(s.reasoning, "still thinking</thi");
        assert_eq!(s.content, "");
    }

    #[test]
    fn prompt_that_opened_think_starts_in_reasoning() {
        assert!(prompt_opens_reasoning("<|im_start|>assistant\n<think>\n"));
        assert!(!prompt_opens_reasoning("<|im_start|>assistant\n"));
        assert!(!prompt_opens_reasoning(
            "assistant\n<think>\n\n</think>\n\n"
        ));
        assert!(!prompt_opens_reasoning(
            "<think>a</think>b<|im_end|>\n<|im_start|>assistant\n"
        ));
        let run_open = |pieces: &[&str]| {
            let mut p = ReasoningParser::in_reasoning(ReasoningParserKind::Qwen3);
            let mut all = Split::default();
            for piece in pieces {
                let s = p.push(piece);
                all.reasoning.push_str(&s.reasoning);
                all.content.push_str(&s.content);
            }
            let s = p.finish();
            all.reasoning.push_str(&s.reasoning);
            all.content.push_str(&s.content);
            all
        };
        let s = run_open(&["Let me", " see.</th", "ink>\n\nSunny"]);
        assert_eq!(
            (s.reasoning.as_str(), s.content.as_str()),
            ("Let me see.", "\n\nSunny")
        );
        let s = run_open(&["still thinking"]);
        assert_eq!(
            (s.reasoning.as_str(), s.content.as_str()),
            ("still thinking", "")
        );
    }

    #[test]
    fn deepseek_reasoning_without_open_tag() {
        let s = run(ReasoningParserKind::DeepSeekR1, &["why", "</think>because"]);
        assert_eq!(
            (s.reasoning.as_str(), s.content.as_str()),
            ("why", "because")
        );
    }
}
