//! Prompts to token ids: chat templates and tokenization, off the async reactor.
//!
//! Invariants:
//! - Rendering and tokenizing run on tokio's blocking pool: they cost time proportional to the
//!   prompt and must never stall the threads that serve other connections.
//! - Template failures are the client's (400, naming `messages`); a tokenizer failure is ours.
//! - Token ids given directly are checked against the vocabulary before anything else.

use std::sync::Arc;

use ferrum_tokenizer::{ChatTemplate, ChatTemplateInput, Tokenizer, TokenizerError};
use ferrum_types::TokenId;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::state::ModelContext;
use crate::validate::token_id;

/// A conversation to render.
pub struct ChatPrompt {
    pub messages: Value,
    pub tools: Option<Value>,
    pub documents: Option<Value>,
    pub add_generation_prompt: bool,
    pub kwargs: Option<Map<String, Value>>,
    pub add_special_tokens: bool,
}

/// A rendered and tokenized prompt.
pub struct Encoded {
    pub text: String,
    pub ids: Vec<TokenId>,
}

fn template_error(e: TokenizerError) -> ApiError {
    match e {
        TokenizerError::TemplateRaised(_)
        | TokenizerError::TemplateRender(_)
        | TokenizerError::TemplateInput(_)
        | TokenizerError::TemplateFuelExhausted
        | TokenizerError::TemplateOutputTooLarge { .. } => ApiError::Template(e.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("tokenizer task failed: {e}")))?
}

/// Renders `chat` with the model's template and tokenizes the result.
pub async fn encode_chat(model: &ModelContext, chat: ChatPrompt) -> Result<Encoded, ApiError> {
    let template: Arc<ChatTemplate> = model.template.clone().ok_or_else(|| {
        ApiError::bad_request(
            "this model has no chat template; start the server with --chat-template, or use /v1/completions",
        )
    })?;
    let tokenizer = model.tokenizer.clone();
    blocking(move || {
        let mut input = ChatTemplateInput::new(&chat.messages);
        input.tools = chat.tools.as_ref();
        input.documents = chat.documents.as_ref();
        input.add_generation_prompt = chat.add_generation_prompt;
        input.extra = chat.kwargs.as_ref();
        let text = template.render(&input).map_err(template_error)?;
        let ids = encode(&tokenizer, &text, chat.add_special_tokens)?;
        Ok(Encoded { text, ids })
    })
    .await
}

/// Tokenizes plain text.
pub async fn encode_text(
    model: &ModelContext,
    text: String,
    add_special_tokens: bool,
) -> Result<Encoded, ApiError> {
    let tokenizer = model.tokenizer.clone();
    blocking(move || {
        let ids = encode(&tokenizer, &text, add_special_tokens)?;
        Ok(Encoded { text, ids })
    })
    .await
}

/// Decodes ids (for /detokenize and prompts given as ids).
pub async fn decode_ids(
    model: &ModelContext,
    ids: Vec<TokenId>,
    skip_special: bool,
) -> Result<String, ApiError> {
    let tokenizer = model.tokenizer.clone();
    blocking(move || {
        tokenizer
            .decode(&ids, skip_special)
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await
}

fn encode(
    tokenizer: &Tokenizer,
    text: &str,
    add_special_tokens: bool,
) -> Result<Vec<TokenId>, ApiError> {
    tokenizer
        .encode(text, add_special_tokens)
        .map_err(|e| ApiError::Internal(format!("tokenization failed: {e}")))
}

/// Checks ids given directly by the client.
pub fn check_ids(param: &str, ids: &[i64], vocab_size: usize) -> Result<Vec<TokenId>, ApiError> {
    ids.iter()
        .map(|&id| token_id(param, id, vocab_size))
        .collect()
}
