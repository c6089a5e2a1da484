//! Tokenizers from SentencePiece: `tokenizer.model` files, and the SentencePiece-style BPE that
//! GGUF `llama` vocabularies share with them.
//!
//! Invariants:
//! - Only BPE models are built. Unigram models (T5, some multilingual models) are refused with an
//!   error that says to provide `tokenizer.json`: their Viterbi segmentation is not reproduced here.
//! - Added tokens from `tokenizer_config.json` keep the ids the config gives them; a mismatch is
//!   an error rather than a silently shifted vocabulary.

mod bpe;
mod proto;

use std::path::Path;

use tokenizers::normalizers::{Precompiled, Replace};
use tokenizers::NormalizerWrapper;

pub(crate) use bpe::{build_spm_bpe, SpmBpeSpec, SpmPiece};

use crate::config::TokenizerConfig;
use crate::error::{Result, TokenizerError};
use crate::tokenizer::{SpecialTokens, Tokenizer};
use proto::{SpModel, MODEL_TYPE_BPE, MODEL_TYPE_UNIGRAM};

impl Tokenizer {
    /// Builds a tokenizer from the bytes of a SentencePiece `tokenizer.model` (BPE type), with
    /// special-token roles from `tokenizer_config.json` where it names them.
    pub fn from_sentencepiece(model_bytes: &[u8], config: &TokenizerConfig) -> Result<Self> {
        let model = SpModel::parse(model_bytes)?;
        match model.trainer.model_type {
            MODEL_TYPE_BPE => {}
            MODEL_TYPE_UNIGRAM => {
                return Err(TokenizerError::Unsupported(
                    "SentencePiece unigram models are not supported; provide tokenizer.json".into(),
                ))
            }
            other => {
                return Err(TokenizerError::Unsupported(format!(
                    "SentencePiece model type {other} is not supported; provide tokenizer.json"
                )))
            }
        }
        let piece_count = model.pieces.len();
        let role = |configured: &Option<String>, trained: i32| -> Option<u32> {
            let trained = u32::try_from(trained)
                .ok()
                .filter(|&id| (id as usize) < piece_count);
            match configured {
                Some(text) => model
                    .pieces
                    .iter()
                    .position(|piece| &piece.text == text)
                    .and_then(|id| u32::try_from(id).ok())
                    .or(trained),
                None => trained,
            }
        };
        let unk = role(&config.unk_token, model.trainer.unk_id);
        let mut special = SpecialTokens {
            bos: role(&config.bos_token, model.trainer.bos_id),
            eos: role(&config.eos_token, model.trainer.eos_id),
            unk,
            pad: role(&config.pad_token, model.trainer.pad_id),
            add_bos: config.add_bos_token.unwrap_or(true),
            add_eos: config.add_eos_token.unwrap_or(false),
        };

        let spec = SpmBpeSpec {
            pre_normalizers: pre_normalizers(&model)?,
            unk_id: unk,
            byte_fallback: model.trainer.byte_fallback,
            add_dummy_prefix: model.normalizer.add_dummy_prefix,
            escape_whitespaces: model.normalizer.escape_whitespaces,
            pieces: model.pieces,
        };
        let mut inner = build_spm_bpe(spec)?;
        add_config_tokens(&mut inner, config)?;
        // Roles named only by added tokens (ids past the SentencePiece pieces).
        let lookup = |token: &Option<String>| token.as_deref().and_then(|t| inner.token_to_id(t));
        special.bos = special.bos.or_else(|| lookup(&config.bos_token));
        special.eos = special.eos.or_else(|| lookup(&config.eos_token));
        special.pad = special.pad.or_else(|| lookup(&config.pad_token));
        Self::from_parts(inner, special)
    }

    /// Reads a `tokenizer.model` file; see [`Tokenizer::from_sentencepiece`].
    pub fn from_sentencepiece_file(path: &Path, config: &TokenizerConfig) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| TokenizerError::io(path, e))?;
        Self::from_sentencepiece(&bytes, config)
    }
}

/// SentencePiece's own normalization: the precompiled character map, then the removal of
/// leading, trailing and repeated spaces.
fn pre_normalizers(model: &SpModel) -> Result<Vec<NormalizerWrapper>> {
    let mut normalizers = Vec::new();
    let spec = &model.normalizer;
    if !spec.precompiled_charsmap.is_empty() {
        let charsmap = Precompiled::from(&spec.precompiled_charsmap).map_err(|e| {
            TokenizerError::SentencePiece(format!("normalizer `{}`: {e}", spec.name))
        })?;
        normalizers.push(NormalizerWrapper::Precompiled(charsmap));
    }
    if spec.remove_extra_whitespaces {
        let regex = |pattern: &str, with: &str| {
            Replace::new(
                tokenizers::normalizers::replace::ReplacePattern::Regex(pattern.into()),
                with,
            )
            .map(NormalizerWrapper::Replace)
            .map_err(|e| TokenizerError::SentencePiece(e.to_string()))
        };
        normalizers.push(regex("^ +| +$", "")?);
        normalizers.push(regex(" {2,}", " ")?);
    }
    Ok(normalizers)
}

/// Adds `added_tokens_decoder` entries, checking that each ends up with its configured id.
fn add_config_tokens(inner: &mut tokenizers::Tokenizer, config: &TokenizerConfig) -> Result<()> {
    for entry in &config.added_tokens {
        let token =
            tokenizers::AddedToken::from(entry.content.as_str(), entry.special).normalized(false);
        if entry.special {
            inner.add_special_tokens(&[token]);
        } else {
            inner.add_tokens(&[token]);
        }
        let got = inner.token_to_id(&entry.content);
        if got != Some(entry.id) {
            return Err(TokenizerError::config(
                "tokenizer_config.json",
                format!(
                    "added token {:?} has id {} but the SentencePiece model gives it {got:?}",
                    entry.content, entry.id
                ),
            ));
        }
    }
    Ok(())
}
