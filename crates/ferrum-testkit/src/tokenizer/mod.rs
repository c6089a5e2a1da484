//! Builds `tokenizer.json` and `tokenizer_config.json` for a spec.
//!
//! The vocabulary is either a tiny BPE learned from a built-in text or Qwen's real one read from
//! `qwen.tiktoken`. Ids: BPE tokens first (bytes, then merged tokens in merge order), then the
//! family's added tokens. The config files take bos/eos/pad ids from here, so all files agree.

mod byte_level;
mod hf_config;
mod json;
mod specials;
mod templates;
mod tiktoken;
mod train;

use crate::config_json::SpecialIds;
use crate::error::{Result, TestkitError};
use crate::spec::{Arch, TestModelSpec, VocabSource};
use specials::AddedToken;

/// Token bytes by id and merges (pairs of ids) in priority order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpeVocab {
    pub tokens: Vec<Vec<u8>>,
    pub merges: Vec<(u32, u32)>,
}

/// The tokenizer files and the ids the model configs need.
#[derive(Debug, Clone)]
pub struct BuiltTokenizer {
    pub tokenizer_json: String,
    pub tokenizer_config_json: String,
    /// BPE tokens plus added tokens: the smallest `vocab_size` that covers every id.
    pub len: usize,
    pub ids: SpecialIds,
}

/// Builds the tokenizer described by `spec.vocab` with `spec.arch`'s special tokens.
pub fn build(spec: &TestModelSpec) -> Result<BuiltTokenizer> {
    let bpe = match &spec.vocab {
        // Llama-3 splits digits in runs of up to three; Qwen one by one.
        VocabSource::Tiny { merges } => {
            train::train_tiny(*merges, if spec.arch == Arch::Llama { 3 } else { 1 })
        }
        VocabSource::QwenTiktoken(path) => tiktoken::load_tiktoken(path)?,
    };
    let table = byte_level::byte_to_char();
    let vocab: Vec<String> = bpe
        .tokens
        .iter()
        .map(|t| byte_level::token_string(&table, t))
        .collect();
    let merges = bpe
        .merges
        .iter()
        .map(|&(a, b)| (vocab[a as usize].as_str(), vocab[b as usize].as_str()))
        .collect();
    let added: Vec<(u32, AddedToken)> = specials::added_tokens(spec.arch)
        .into_iter()
        .enumerate()
        .map(|(i, t)| ((vocab.len() + i) as u32, t))
        .collect();
    let id_of = |content: &str| {
        added
            .iter()
            .find(|(_, t)| t.content == content)
            .map(|(id, _)| *id)
            .ok_or_else(|| TestkitError::InvalidSpec(format!("no added token {content}")))
    };
    let (bos, eos, pad) = specials::role_tokens(spec.arch);
    let ids = SpecialIds {
        bos: id_of(bos)?,
        eos: eos.iter().map(|c| id_of(c)).collect::<Result<_>>()?,
        pad: pad.map(id_of).transpose()?,
    };
    let tokenizer_json = json::tokenizer_json(&json::TokenizerParts {
        arch: spec.arch,
        vocab: &vocab,
        merges,
        added: &added,
        bos: (bos, ids.bos),
    })?;
    Ok(BuiltTokenizer {
        tokenizer_json,
        tokenizer_config_json: hf_config::tokenizer_config_json(spec, &added)?,
        len: vocab.len() + added.len(),
        ids,
    })
}
