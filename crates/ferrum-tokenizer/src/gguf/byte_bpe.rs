//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`) assembled from GGUF tokens and merges.
//!
//! Invariants:
//! - Tokens are stored in their byte-level form (`Ġ` for a space byte); the `ByteLevel`
//!   pre-tokenizer maps text bytes to that form after the regex splits, and the `ByteLevel`
//!   decoder maps them back.
//! - Merge rank is the position in `tokenizer.ggml.merges`, as in llama.cpp.
//! - When a token string occurs twice, the lower id keeps it (llama.cpp's `text_to_token` keeps
//!   the first entry too).

use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior};

use super::pretokenizer::PreTokenizerSpec;
use crate::error::{Result, TokenizerError};
use crate::piece::{add_vocabulary_tokens, PieceKind};

pub(super) fn build(
    tokens: Vec<String>,
    kinds: &[PieceKind],
    merges: &[String],
    spec: PreTokenizerSpec,
) -> Result<tokenizers::Tokenizer> {
    let mut vocab = Vocab::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        let id = u32::try_from(id)
            .map_err(|_| TokenizerError::GgufVocab("more than 2^32 tokens".into()))?;
        vocab.entry(token.clone()).or_insert(id);
    }
    let merges = merges
        .iter()
        .map(|line| split_merge(line))
        .collect::<Result<Vec<_>>>()?;
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(spec.ignore_merges)
        .build()
        .map_err(|e| TokenizerError::GgufVocab(format!("building BPE: {e}")))?;

    let mut steps = Vec::with_capacity(spec.regexes.len() + 1);
    for regex in spec.regexes {
        let split = Split::new(
            SplitPattern::Regex((*regex).to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| TokenizerError::GgufVocab(format!("pre-tokenizer regex {regex}: {e}")))?;
        steps.push(PreTokenizerWrapper::Split(split));
    }
    // Splitting is done above; this step only maps bytes to their printable stand-ins.
    steps.push(PreTokenizerWrapper::ByteLevel(ByteLevel::new(
        false, false, false,
    )));

    let mut tokenizer = tokenizers::Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(steps)));
    tokenizer.with_decoder(Some(ByteLevel::new(false, false, false)));
    add_vocabulary_tokens(
        &mut tokenizer,
        tokens.iter().map(String::as_str).zip(kinds.iter().copied()),
    );
    Ok(tokenizer)
}

/// `"Ġ t"` → `("Ġ", "t")`. The separator is searched from the second byte on, as llama.cpp does,
/// so that a merge whose left side is a lone space still splits correctly.
fn split_merge(line: &str) -> Result<(String, String)> {
    let first = line.chars().next().map_or(0, char::len_utf8);
    line[first..]
        .find(' ')
        .map(|at| {
            let at = first + at;
            (line[..at].to_string(), line[at + 1..].to_string())
        })
        .ok_or_else(|| TokenizerError::GgufVocab(format!("merge `{line}` has no separator")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_split_at_the_first_inner_space() {
        assert_eq!(
            split_merge("Ġ t").expect("valid"),
            ("Ġ".to_string(), "t".to_string())
        );
        assert_eq!(
            split_merge("  x").expect("valid"),
            (" ".to_string(), "x".to_string())
        );
        assert!(split_merge("abc").is_err());
    }
}
