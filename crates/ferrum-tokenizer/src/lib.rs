//! Text ↔ token ids, and the text around them: tokenizers built from `tokenizer.json`,
//! SentencePiece `tokenizer.model` files or GGUF vocabularies; chat templates rendered the way
//! transformers renders them; incremental detokenization for streaming.
//!
//! Invariant: everything that turns text into ids or back lives here; the engine never sees text.

mod config;
mod detokenizer;
mod error;
mod files;
mod gguf;
mod piece;
mod sentencepiece;
mod template;
mod tokenizer;

pub use config::{AddedTokenEntry, TokenizerConfig};
pub use detokenizer::IncrementalDecoder;
pub use error::{Result, TokenizerError};
pub use files::{LoadedTokenizer, TokenizerFiles};
pub use gguf::GgufVocab;
pub use template::{ChatTemplate, ChatTemplateInput, ChatTemplates, TemplateLimits};
pub use tokenizer::{SpecialTokens, Tokenizer};

#[cfg(test)]
mod tests {
    /// Tokenizers and templates are shared by request handlers on many threads.
    #[test]
    fn shared_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::Tokenizer>();
        assert_send_sync::<super::ChatTemplate>();
        assert_send_sync::<super::IncrementalDecoder>();
    }
}
