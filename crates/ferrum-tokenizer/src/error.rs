//! The crate's one error type.
//!
//! Invariant: every failure a caller can act on has its own variant, so that the server maps
//! template problems to 400s and file problems to start-up errors without parsing messages.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = TokenizerError> = std::result::Result<T, E>;

/// Everything that can go wrong while loading a tokenizer, tokenizing or rendering a template.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The model directory holds neither `tokenizer.json` nor `tokenizer.model`.
    #[error("no tokenizer in {0}: expected tokenizer.json or tokenizer.model")]
    NotFound(PathBuf),
    /// `tokenizer.json` could not be parsed or built.
    #[error("invalid tokenizer.json: {0}")]
    TokenizerJson(String),
    /// `tokenizer_config.json` (or a file beside it) is malformed.
    #[error("invalid {file}: {message}")]
    Config { file: String, message: String },
    /// `tokenizer.model` is not a SentencePiece model we can read.
    #[error("invalid SentencePiece model: {0}")]
    SentencePiece(String),
    /// The GGUF vocabulary is inconsistent (lengths differ, ids out of range, bad merges).
    #[error("invalid GGUF vocabulary: {0}")]
    GgufVocab(String),
    /// A tokenizer kind we deliberately do not implement, with what to use instead.
    #[error("unsupported tokenizer: {0}")]
    Unsupported(String),
    /// The underlying tokenizer failed while encoding.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The underlying tokenizer failed while decoding.
    #[error("decoding failed: {0}")]
    Decode(String),
    /// The chat template does not parse.
    #[error("chat template syntax error: {0}")]
    TemplateSyntax(String),
    /// The template called `raise_exception(message)`: the input is not acceptable to it.
    #[error("chat template rejected the input: {0}")]
    TemplateRaised(String),
    /// Rendering failed (unknown filter, type error, undefined attribute …).
    #[error("chat template rendering failed: {0}")]
    TemplateRender(String),
    /// The template ran out of its instruction budget.
    #[error("chat template exceeded its execution budget")]
    TemplateFuelExhausted,
    /// The rendered prompt grew past the output limit.
    #[error("chat template output exceeds {limit} bytes")]
    TemplateOutputTooLarge { limit: usize },
    /// The template inputs have the wrong shape (messages not a list of objects …).
    #[error("invalid chat template input: {0}")]
    TemplateInput(String),
}

impl TokenizerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(file: &str, message: impl Into<String>) -> Self {
        Self::Config {
            file: file.to_string(),
            message: message.into(),
        }
    }
}
