//! Tokenizers built from the `tokenizer.ggml.*` metadata of a GGUF file.
//!
//! Invariants:
//! - The ids match llama.cpp's for the same file: `gpt2` vocabularies are byte-level BPE split
//!   by the regexes llama.cpp uses for `tokenizer.ggml.pre`; `llama` vocabularies are
//!   SentencePiece-style BPE whose merge order comes from the token scores, with `<0xNN>` byte
//!   fallback and the `▁` space marker.
//! - Defaults for absent keys are llama.cpp's (`llama`: BOS added, space prefix on).
//! - The GGUF reader only copies metadata into [`GgufVocab`]; every decision is made here.

mod byte_bpe;
mod pretokenizer;

use ferrum_types::TokenId;

use crate::error::{Result, TokenizerError};
use crate::piece::PieceKind;
use crate::sentencepiece::{build_spm_bpe, SpmBpeSpec, SpmPiece};
use crate::tokenizer::{SpecialTokens, Tokenizer};

/// The `tokenizer.ggml.*` metadata of a GGUF file, as plain data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE) or `"llama"` (SentencePiece BPE).
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer name of a `gpt2` vocabulary.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, indexed by token id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (needed by `llama`).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
    /// 6 byte.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges` as `"left right"` (needed by `gpt2`).
    pub merges: Option<Vec<String>>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub unknown_token_id: Option<u32>,
    pub padding_token_id: Option<u32>,
    pub add_bos_token: Option<bool>,
    pub add_eos_token: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix` (`llama` only).
    pub add_space_prefix: Option<bool>,
}

impl GgufVocab {
    fn kinds(&self) -> Result<Vec<PieceKind>> {
        match &self.token_types {
            None => Ok(vec![PieceKind::Normal; self.tokens.len()]),
            Some(types) if types.len() == self.tokens.len() => Ok(types
                .iter()
                .map(|&code| PieceKind::from_code(code))
                .collect()),
            Some(types) => Err(TokenizerError::GgufVocab(format!(
                "{} token types for {} tokens",
                types.len(),
                self.tokens.len()
            ))),
        }
    }

    fn check_id(&self, id: Option<u32>, key: &str) -> Result<Option<TokenId>> {
        match id {
            Some(id) if id as usize >= self.tokens.len() => Err(TokenizerError::GgufVocab(
                format!("{key} {id} is outside the {} tokens", self.tokens.len()),
            )),
            other => Ok(other),
        }
    }
}

impl Tokenizer {
    /// Builds the tokenizer that llama.cpp would build from the same GGUF metadata.
    pub fn from_gguf_vocab(vocab: GgufVocab) -> Result<Self> {
        let kinds = vocab.kinds()?;
        let mut special = SpecialTokens {
            bos: vocab.check_id(vocab.bos_token_id, "bos_token_id")?,
            eos: vocab.check_id(vocab.eos_token_id, "eos_token_id")?,
            unk: vocab.check_id(vocab.unknown_token_id, "unknown_token_id")?,
            pad: vocab.check_id(vocab.padding_token_id, "padding_token_id")?,
            add_bos: false,
            add_eos: vocab.add_eos_token.unwrap_or(false),
        };
        let inner = match vocab.model.as_str() {
            "gpt2" => {
                let spec = pretokenizer::pre_tokenizer_spec(vocab.pre.as_deref())?;
                special.add_bos = vocab.add_bos_token.unwrap_or(spec.add_bos_by_default);
                let merges = vocab.merges.ok_or_else(|| {
                    TokenizerError::GgufVocab(
                        "a gpt2 vocabulary needs tokenizer.ggml.merges".into(),
                    )
                })?;
                byte_bpe::build(vocab.tokens, &kinds, &merges, spec)?
            }
            "llama" => {
                special.add_bos = vocab.add_bos_token.unwrap_or(true);
                let scores = match vocab.scores {
                    Some(scores) if scores.len() == vocab.tokens.len() => scores,
                    Some(scores) => {
                        return Err(TokenizerError::GgufVocab(format!(
                            "{} scores for {} tokens",
                            scores.len(),
                            vocab.tokens.len()
                        )))
                    }
                    None => {
                        return Err(TokenizerError::GgufVocab(
                            "a llama vocabulary needs tokenizer.ggml.scores".into(),
                        ))
                    }
                };
                let add_space_prefix = vocab.add_space_prefix.unwrap_or(true);
                let pieces = vocab
                    .tokens
                    .into_iter()
                    .zip(scores)
                    .zip(kinds)
                    .map(|((text, score), kind)| SpmPiece { text, score, kind })
                    .collect();
                build_spm_bpe(SpmBpeSpec::llama(pieces, special.unk, add_space_prefix))?
            }
            other => {
                return Err(TokenizerError::Unsupported(format!(
                    "GGUF tokenizer model `{other}` (supported: gpt2, llama)"
                )))
            }
        };
        Self::from_parts(inner, special)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(model: &str) -> GgufVocab {
        GgufVocab {
            model: model.into(),
            tokens: vec!["a".into(), "b".into(), "ab".into()],
            scores: Some(vec![-1.0, -2.0, -3.0]),
            merges: Some(vec!["a b".into()]),
            ..GgufVocab::default()
        }
    }

    #[test]
    fn both_models_build_with_llama_cpp_defaults() {
        let llama = Tokenizer::from_gguf_vocab(vocab("llama")).expect("llama builds");
        assert!(
            llama.special_tokens().add_bos,
            "llama vocabularies add BOS by default"
        );
        let gpt2 = Tokenizer::from_gguf_vocab(vocab("gpt2")).expect("gpt2 builds");
        assert!(!gpt2.special_tokens().add_bos);
        assert_eq!(gpt2.encode("ab", false).expect("encodes"), vec![2]);
    }

    #[test]
    fn inconsistent_metadata_is_rejected() {
        let mut bad = vocab("llama");
        bad.scores = Some(vec![0.0]);
        assert!(matches!(
            Tokenizer::from_gguf_vocab(bad),
            Err(TokenizerError::GgufVocab(_))
        ));
        let mut bad = vocab("gpt2");
        bad.eos_token_id = Some(3);
        assert!(matches!(
            Tokenizer::from_gguf_vocab(bad),
            Err(TokenizerError::GgufVocab(_))
        ));
        let mut bad = vocab("gpt2");
        bad.merges = None;
        assert!(matches!(
            Tokenizer::from_gguf_vocab(bad),
            Err(TokenizerError::GgufVocab(_))
        ));
        assert!(matches!(
            Tokenizer::from_gguf_vocab(vocab("bert")),
            Err(TokenizerError::Unsupported(_))
        ));
    }
}
