//! [`Tokenizer`]: the one tokenizer type, whatever file it was built from.
//!
//! Invariants:
//! - Every source (`tokenizer.json`, `tokenizer.model`, a GGUF vocabulary) becomes a Hugging Face
//!   `tokenizers::Tokenizer` at construction, so encoding and decoding have one code path.
//! - The inner tokenizer is always called with `add_special_tokens = false`; BOS/EOS are added
//!   here from [`SpecialTokens`], so `add_bos_token()` tells exactly what `encode` does.
//! - Special tokens written in the text (`<|im_start|>`) are always parsed as special tokens, as
//!   llama.cpp (`parse_special = true`) and transformers do.
//! - Truncation and padding stored in a `tokenizer.json` are switched off: the server enforces
//!   context limits itself and must see the full prompt length.

use std::path::Path;

use ferrum_types::TokenId;

use crate::config::TokenizerConfig;
use crate::error::{Result, TokenizerError};

/// Ids of the special tokens that the engine and the server need by role, and whether `encode`
/// adds BOS/EOS when asked to add special tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<TokenId>,
    pub eos: Option<TokenId>,
    pub unk: Option<TokenId>,
    pub pad: Option<TokenId>,
    pub add_bos: bool,
    pub add_eos: bool,
}

/// Text ↔ token ids for one model.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    special: SpecialTokens,
    /// Sorted ids of every token flagged special (added special tokens plus BOS/EOS/UNK/PAD).
    special_ids: Vec<TokenId>,
    /// One past the largest id any token has.
    vocab_size: usize,
}

impl Tokenizer {
    /// Wraps a built HF tokenizer. Truncation and padding are cleared (see module invariants).
    pub(crate) fn from_parts(
        mut inner: tokenizers::Tokenizer,
        special: SpecialTokens,
    ) -> Result<Self> {
        clear_length_limits(&mut inner)?;
        let vocab_size = inner
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&max| max as usize + 1);
        let mut special_ids: Vec<TokenId> = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, token)| token.special)
            .map(|(id, _)| id)
            .chain(
                [special.bos, special.eos, special.unk, special.pad]
                    .into_iter()
                    .flatten(),
            )
            .collect();
        special_ids.sort_unstable();
        special_ids.dedup();
        Ok(Self {
            inner,
            special,
            special_ids,
            vocab_size,
        })
    }

    /// Builds a tokenizer from the contents of a `tokenizer.json`, with special-token roles and
    /// BOS/EOS flags from `tokenizer_config.json` (pass `TokenizerConfig::default()` if absent).
    ///
    /// Where the config does not say whether BOS/EOS are added, the `tokenizer.json`
    /// post-processor decides, as it does in transformers.
    pub fn from_tokenizer_json(json: &[u8], config: &TokenizerConfig) -> Result<Self> {
        let mut inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|e| TokenizerError::TokenizerJson(e.to_string()))?;
        clear_length_limits(&mut inner)?;
        let lookup = |token: &Option<String>| token.as_deref().and_then(|t| inner.token_to_id(t));
        let mut special = SpecialTokens {
            bos: lookup(&config.bos_token),
            eos: lookup(&config.eos_token),
            unk: lookup(&config.unk_token),
            pad: lookup(&config.pad_token),
            add_bos: false,
            add_eos: false,
        };
        let (prefix, suffix) = post_processor_additions(&inner)?;
        // A post-processor that adds exactly one token names the BOS (EOS) even when the config
        // does not, e.g. a bare tokenizer.json without tokenizer_config.json.
        if let ([only], None) = (prefix.as_slice(), special.bos) {
            special.bos = Some(*only);
        }
        if let ([only], None) = (suffix.as_slice(), special.eos) {
            special.eos = Some(*only);
        }
        special.add_bos = config.add_bos_token.unwrap_or(
            special.bos.is_some() && prefix == special.bos.into_iter().collect::<Vec<_>>(),
        );
        special.add_eos = config.add_eos_token.unwrap_or(
            special.eos.is_some() && suffix == special.eos.into_iter().collect::<Vec<_>>(),
        );
        Self::from_parts(inner, special)
    }

    /// Reads a `tokenizer.json` file; see [`Tokenizer::from_tokenizer_json`].
    pub fn from_tokenizer_json_file(path: &Path, config: &TokenizerConfig) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| TokenizerError::io(path, e))?;
        Self::from_tokenizer_json(&bytes, config)
    }

    /// Token ids for `text`. Special tokens written in the text are parsed as special tokens;
    /// `add_special_tokens` adds BOS/EOS as [`Tokenizer::add_bos_token`] and
    /// [`Tokenizer::add_eos_token`] say.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<TokenId>> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let body = encoding.get_ids();
        if !add_special_tokens {
            return Ok(body.to_vec());
        }
        let bos = self.special.bos.filter(|_| self.special.add_bos);
        let eos = self.special.eos.filter(|_| self.special.add_eos);
        let mut ids = Vec::with_capacity(body.len() + 2);
        ids.extend(bos);
        ids.extend_from_slice(body);
        ids.extend(eos);
        Ok(ids)
    }

    /// Text for `ids`. Ids outside the vocabulary are skipped, as the HF tokenizer does (a model's
    /// embedding table is often padded past the vocabulary).
    pub fn decode(&self, ids: &[TokenId], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| TokenizerError::Decode(e.to_string()))
    }

    /// The id of a token given its vocabulary string (byte-level or `▁` form for model tokens,
    /// plain text for added tokens).
    pub fn token_to_id(&self, token: &str) -> Option<TokenId> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary string of a token id.
    pub fn id_to_token(&self, id: TokenId) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// One past the largest token id, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn bos_token_id(&self) -> Option<TokenId> {
        self.special.bos
    }

    pub fn eos_token_id(&self) -> Option<TokenId> {
        self.special.eos
    }

    pub fn unk_token_id(&self) -> Option<TokenId> {
        self.special.unk
    }

    pub fn pad_token_id(&self) -> Option<TokenId> {
        self.special.pad
    }

    /// Whether `encode(_, true)` prepends BOS.
    pub fn add_bos_token(&self) -> bool {
        self.special.add_bos && self.special.bos.is_some()
    }

    /// Whether `encode(_, true)` appends EOS.
    pub fn add_eos_token(&self) -> bool {
        self.special.add_eos && self.special.eos.is_some()
    }

    /// All the roles and flags at once.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// Sorted ids of every special token (what `skip_special_tokens` removes, plus the role ids).
    pub fn special_token_ids(&self) -> &[TokenId] {
        &self.special_ids
    }

    pub fn is_special_token(&self, id: TokenId) -> bool {
        self.special_ids.binary_search(&id).is_ok()
    }
}

fn clear_length_limits(inner: &mut tokenizers::Tokenizer) -> Result<()> {
    inner
        .with_truncation(None)
        .map_err(|e| TokenizerError::TokenizerJson(e.to_string()))?;
    inner.with_padding(None);
    Ok(())
}

/// The ids a `tokenizer.json` post-processor puts before and after a sequence, found by running
/// it on a one-token encoding whose id cannot occur in any vocabulary.
fn post_processor_additions(inner: &tokenizers::Tokenizer) -> Result<(Vec<TokenId>, Vec<TokenId>)> {
    use tokenizers::PostProcessor;

    const SENTINEL: TokenId = TokenId::MAX;
    let Some(processor) = inner.get_post_processor() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let encoding = tokenizers::Encoding::from_tokens(
        vec![tokenizers::Token::new(SENTINEL, "a".to_string(), (0, 1))],
        0,
    );
    let processed = processor
        .process(encoding, None, true)
        .map_err(|e| TokenizerError::TokenizerJson(format!("post-processor: {e}")))?;
    let ids = processed.get_ids();
    Ok(match ids.iter().position(|&id| id == SENTINEL) {
        Some(at) => (ids[..at].to_vec(), ids[at + 1..].to_vec()),
        None => (Vec::new(), Vec::new()),
    })
}
