//! [`PieceKind`]: the role of a vocabulary entry, shared by GGUF token types and SentencePiece
//! piece types (both use the same numbering, 1 = normal … 6 = byte).
//!
//! Invariant: control and unknown pieces become special added tokens, user-defined pieces become
//! non-special added tokens matched on the raw text; the others belong to the model.

/// What a vocabulary entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PieceKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceKind {
    /// Maps a GGUF `token_type` / SentencePiece `Type` code; 0 and unknown codes are normal.
    pub(crate) fn from_code(code: i32) -> Self {
        match code {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }

    /// The added token this piece becomes, if it is split out of the text before the model runs.
    pub(crate) fn added_token(self, content: &str) -> Option<tokenizers::AddedToken> {
        match self {
            Self::Control | Self::Unknown => {
                Some(tokenizers::AddedToken::from(content, true).normalized(false))
            }
            Self::UserDefined => {
                Some(tokenizers::AddedToken::from(content, false).normalized(false))
            }
            Self::Normal | Self::Unused | Self::Byte => None,
        }
    }
}

/// Registers the control, unknown and user-defined pieces of a vocabulary as added tokens, in id
/// order. They already have ids in the model vocabulary, so no new ids are created.
pub(crate) fn add_vocabulary_tokens<'a>(
    tokenizer: &mut tokenizers::Tokenizer,
    pieces: impl Iterator<Item = (&'a str, PieceKind)>,
) {
    let (special, plain): (Vec<_>, Vec<_>) = pieces
        .filter_map(|(text, kind)| kind.added_token(text))
        .partition(|token| token.special);
    tokenizer.add_special_tokens(&special);
    tokenizer.add_tokens(&plain);
}
