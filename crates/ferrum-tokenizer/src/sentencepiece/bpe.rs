//! SentencePiece-style BPE (Llama 2, Mistral, Gemma, GGUF `llama` vocabularies) on top of the HF
//! BPE model.
//!
//! Invariants:
//! - SentencePiece and llama.cpp merge, at each step, the adjacent pair whose concatenation is the
//!   highest-scoring piece (leftmost first). The HF BPE model merges by rank instead, so merges are
//!   derived from the pieces and ranked by the merged piece's score (highest first), which makes
//!   the two agree.
//! - Characters missing from the vocabulary fall back to `<0xNN>` byte pieces when the model has
//!   them, otherwise to the unknown piece.
//! - Spaces become `▁`; with a dummy prefix, every text segment (the text after each special
//!   token included, as in llama.cpp) starts with `▁`, and decoding drops one leading space.

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::{DecoderWrapper, NormalizerWrapper};

use crate::error::{Result, TokenizerError};
use crate::piece::{add_vocabulary_tokens, PieceKind};

const SPACE_MARKER: &str = "▁";

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpmPiece {
    pub text: String,
    pub score: f32,
    pub kind: PieceKind,
}

/// Everything needed to build the tokenizer.
pub(crate) struct SpmBpeSpec {
    pub pieces: Vec<SpmPiece>,
    pub unk_id: Option<u32>,
    pub byte_fallback: bool,
    /// Normalizers run before the space handling (SentencePiece's charsmap, whitespace cleanup).
    pub pre_normalizers: Vec<NormalizerWrapper>,
    pub add_dummy_prefix: bool,
    pub escape_whitespaces: bool,
}

impl SpmBpeSpec {
    /// A GGUF `llama` vocabulary, as llama.cpp tokenizes it.
    pub(crate) fn llama(
        pieces: Vec<SpmPiece>,
        unk_id: Option<u32>,
        add_space_prefix: bool,
    ) -> Self {
        Self {
            pieces,
            unk_id,
            byte_fallback: true,
            pre_normalizers: Vec::new(),
            add_dummy_prefix: add_space_prefix,
            escape_whitespaces: true,
        }
    }
}

fn build_error(e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::SentencePiece(format!("building BPE: {e}"))
}

pub(crate) fn build_spm_bpe(spec: SpmBpeSpec) -> Result<tokenizers::Tokenizer> {
    let mut vocab = Vocab::with_capacity(spec.pieces.len());
    for (id, piece) in spec.pieces.iter().enumerate() {
        let id = u32::try_from(id).map_err(build_error)?;
        vocab.entry(piece.text.clone()).or_insert(id);
    }
    let merges = merges_from_scores(&spec.pieces, &vocab);
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(spec.byte_fallback)
        .fuse_unk(true);
    if let Some(unk) = spec.unk_id.and_then(|id| spec.pieces.get(id as usize)) {
        builder = builder.unk_token(unk.text.clone());
    }
    let model = builder.build().map_err(build_error)?;

    let mut normalizers = spec.pre_normalizers;
    if spec.add_dummy_prefix {
        normalizers.push(Prepend::new(SPACE_MARKER.to_string()).into());
    }
    if spec.escape_whitespaces {
        normalizers.push(Replace::new(" ", SPACE_MARKER).map_err(build_error)?.into());
    }
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPACE_MARKER, " ").map_err(build_error)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if spec.add_dummy_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }

    let mut tokenizer = tokenizers::Tokenizer::new(model);
    if !normalizers.is_empty() {
        tokenizer.with_normalizer(Some(NormalizerSequence::new(normalizers)));
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    add_vocabulary_tokens(
        &mut tokenizer,
        spec.pieces
            .iter()
            .map(|piece| (piece.text.as_str(), piece.kind)),
    );
    Ok(tokenizer)
}

/// Every split of a normal or user-defined piece into two pieces of the vocabulary is a merge;
/// merges are ranked by the merged piece's score, highest first (ties: lower merged id, then
/// lower left id).
fn merges_from_scores(pieces: &[SpmPiece], vocab: &Vocab) -> Vec<(String, String)> {
    let mut found: Vec<(f32, u32, u32, &str, &str)> = Vec::new();
    for piece in pieces {
        if !matches!(piece.kind, PieceKind::Normal | PieceKind::UserDefined) {
            continue;
        }
        let Some(&merged) = vocab.get(&piece.text) else {
            continue;
        };
        for (at, _) in piece.text.char_indices().skip(1) {
            let (left, right) = piece.text.split_at(at);
            if let (Some(&left_id), true) = (vocab.get(left), vocab.contains_key(right)) {
                found.push((piece.score, merged, left_id, left, right));
            }
        }
    }
    found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    found
        .into_iter()
        .map(|(_, _, _, left, right)| (left.to_string(), right.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(text: &str, score: f32, kind: PieceKind) -> SpmPiece {
        SpmPiece {
            text: text.to_string(),
            score,
            kind,
        }
    }

    /// A toy Llama-style vocabulary: specials, two byte pieces, characters and merged pieces.
    fn toy() -> tokenizers::Tokenizer {
        let pieces = vec![
            piece("<unk>", 0.0, PieceKind::Unknown),
            piece("<s>", 0.0, PieceKind::Control),
            piece("</s>", 0.0, PieceKind::Control),
            piece("<0xE2>", 0.0, PieceKind::Byte),
            piece("<0x82>", 0.0, PieceKind::Byte),
            piece("<0xAC>", 0.0, PieceKind::Byte),
            piece("▁", -1.0, PieceKind::Normal),
            piece("h", -2.0, PieceKind::Normal),
            piece("i", -3.0, PieceKind::Normal),
            piece("▁h", -4.0, PieceKind::Normal),
            piece("hi", -5.0, PieceKind::Normal),
            piece("▁hi", -6.0, PieceKind::Normal),
        ];
        build_spm_bpe(SpmBpeSpec::llama(pieces, Some(0), true)).expect("toy builds")
    }

    fn ids(tokenizer: &tokenizers::Tokenizer, text: &str) -> Vec<u32> {
        tokenizer
            .encode_fast(text, false)
            .expect("encodes")
            .get_ids()
            .to_vec()
    }

    #[test]
    fn higher_score_merges_first() {
        // "▁h" (-4) outranks "hi" (-5), so "▁hi" is reached through "▁h" + "i".
        let tokenizer = toy();
        assert_eq!(ids(&tokenizer, "hi"), vec![11]);
        assert_eq!(ids(&tokenizer, "hi hi"), vec![11, 11]);
    }

    #[test]
    fn unknown_characters_fall_back_to_bytes() {
        let tokenizer = toy();
        // '€' is E2 82 AC.
        assert_eq!(ids(&tokenizer, "€"), vec![6, 3, 4, 5]);
        let text = tokenizer.decode(&[6, 3, 4, 5], false).expect("decodes");
        assert_eq!(text, "€");
    }

    #[test]
    fn space_prefix_after_special_tokens_and_stripped_on_decode() {
        let tokenizer = toy();
        assert_eq!(ids(&tokenizer, "<s>hi"), vec![1, 11]);
        assert_eq!(
            tokenizer.decode(&[11, 11], false).expect("decodes"),
            "hi hi"
        );
        assert_eq!(tokenizer.decode(&[1, 11], true).expect("decodes"), "hi");
    }
}
