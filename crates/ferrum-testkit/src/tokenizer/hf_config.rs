//! `tokenizer_config.json`: added-token table, role tokens, chat template, tokenizer class.

use serde::Serialize;

use super::json::OrderedMap;
use super::specials::AddedToken;
use super::templates::chat_template;
use crate::spec::{Arch, TestModelSpec};

#[derive(Serialize)]
struct AddedTokenDecoder<'a> {
    content: &'a str,
    lstrip: bool,
    normalized: bool,
    rstrip: bool,
    single_word: bool,
    special: bool,
}

#[derive(Serialize)]
struct QwenTokenizerConfig<'a> {
    add_bos_token: bool,
    add_prefix_space: bool,
    added_tokens_decoder: OrderedMap<String, AddedTokenDecoder<'a>>,
    additional_special_tokens: Vec<&'a str>,
    bos_token: Option<&'a str>,
    chat_template: String,
    clean_up_tokenization_spaces: bool,
    eos_token: &'a str,
    errors: &'static str,
    model_max_length: usize,
    pad_token: &'a str,
    split_special_tokens: bool,
    tokenizer_class: &'static str,
    unk_token: Option<&'a str>,
}

#[derive(Serialize)]
struct LlamaTokenizerConfig<'a> {
    added_tokens_decoder: OrderedMap<String, AddedTokenDecoder<'a>>,
    bos_token: &'a str,
    chat_template: String,
    clean_up_tokenization_spaces: bool,
    eos_token: &'a str,
    model_input_names: [&'static str; 2],
    model_max_length: usize,
    tokenizer_class: &'static str,
}

/// The text of `tokenizer_config.json`.
pub fn tokenizer_config_json(
    spec: &TestModelSpec,
    added: &[(u32, AddedToken)],
) -> serde_json::Result<String> {
    let decoder = OrderedMap(
        added
            .iter()
            .map(|(id, t)| {
                let entry = AddedTokenDecoder {
                    content: t.content,
                    lstrip: false,
                    normalized: false,
                    rstrip: false,
                    single_word: false,
                    special: t.special,
                };
                (id.to_string(), entry)
            })
            .collect(),
    );
    let text = match spec.arch {
        Arch::Llama => serde_json::to_string_pretty(&LlamaTokenizerConfig {
            added_tokens_decoder: decoder,
            bos_token: "<|begin_of_text|>",
            chat_template: chat_template(spec.arch),
            // Llama-3 ships `true`, but that clean-up strips spaces before punctuation on decode,
            // which would make detokenization tests disagree with the text; transformers 5
            // ignores it for BPE anyway.
            clean_up_tokenization_spaces: false,
            eos_token: "<|eot_id|>",
            model_input_names: ["input_ids", "attention_mask"],
            model_max_length: spec.max_position_embeddings,
            tokenizer_class: "PreTrainedTokenizerFast",
        })?,
        Arch::Qwen2 | Arch::Qwen3 => serde_json::to_string_pretty(&QwenTokenizerConfig {
            add_bos_token: false,
            add_prefix_space: false,
            added_tokens_decoder: decoder,
            // Qwen lists its special=true tokens here, except <|endoftext|> (the pad token).
            additional_special_tokens: added
                .iter()
                .filter(|(_, t)| t.special && t.content != "<|endoftext|>")
                .map(|(_, t)| t.content)
                .collect(),
            bos_token: None,
            chat_template: chat_template(spec.arch),
            clean_up_tokenization_spaces: false,
            eos_token: "<|im_end|>",
            errors: "replace",
            model_max_length: spec.max_position_embeddings,
            pad_token: "<|endoftext|>",
            split_special_tokens: false,
            tokenizer_class: "Qwen2Tokenizer",
            unk_token: None,
        })?,
    };
    Ok(text + "\n")
}
