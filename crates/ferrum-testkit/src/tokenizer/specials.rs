//! Added (special) tokens of each family, in id order, as the real tokenizers list them.
//!
//! They are appended right after the BPE vocabulary: with Qwen's real vocabulary that puts
//! `<|endoftext|>` at 151643 and `</think>` at 151668, exactly as in Qwen3's checkpoints.
//! `special: false` entries (Qwen's tool/FIM/think tags) are kept on decode by HF tokenizers.

use crate::spec::Arch;

/// One added token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddedToken {
    pub content: &'static str,
    pub special: bool,
}

const fn t(content: &'static str, special: bool) -> AddedToken {
    AddedToken { content, special }
}

/// Qwen2.5's added tokens (ids 151643..=151664 with the real vocabulary).
const QWEN2: &[AddedToken] = &[
    t("<|endoftext|>", true),
    t("<|im_start|>", true),
    t("<|im_end|>", true),
    t("<|object_ref_start|>", true),
    t("<|object_ref_end|>", true),
    t("<|box_start|>", true),
    t("<|box_end|>", true),
    t("<|quad_start|>", true),
    t("<|quad_end|>", true),
    t("<|vision_start|>", true),
    t("<|vision_end|>", true),
    t("<|vision_pad|>", true),
    t("<|image_pad|>", true),
    t("<|video_pad|>", true),
    t("<tool_call>", false),
    t("</tool_call>", false),
    t("<|fim_prefix|>", false),
    t("<|fim_middle|>", false),
    t("<|fim_suffix|>", false),
    t("<|fim_pad|>", false),
    t("<|repo_name|>", false),
    t("<|file_sep|>", false),
];

/// What Qwen3 adds after Qwen2.5's list (ids 151665..=151668).
const QWEN3_EXTRA: &[AddedToken] = &[
    t("<tool_response>", false),
    t("</tool_response>", false),
    t("<think>", false),
    t("</think>", false),
];

/// Llama-3's first eleven added tokens (ids 128000..=128010 in the real vocabulary; the other
/// 245 are reserved placeholders a tiny vocabulary does not need).
const LLAMA3: &[AddedToken] = &[
    t("<|begin_of_text|>", true),
    t("<|end_of_text|>", true),
    t("<|reserved_special_token_0|>", true),
    t("<|reserved_special_token_1|>", true),
    t("<|finetune_right_pad_id|>", true),
    t("<|reserved_special_token_2|>", true),
    t("<|start_header_id|>", true),
    t("<|end_header_id|>", true),
    t("<|eom_id|>", true),
    t("<|eot_id|>", true),
    t("<|python_tag|>", true),
];

/// The added tokens of a family, in id order.
pub fn added_tokens(arch: Arch) -> Vec<AddedToken> {
    match arch {
        Arch::Llama => LLAMA3.to_vec(),
        Arch::Qwen2 => QWEN2.to_vec(),
        Arch::Qwen3 => QWEN2.iter().chain(QWEN3_EXTRA).copied().collect(),
    }
}

/// (bos, eos list with the primary first, pad) by content, per family.
pub fn role_tokens(arch: Arch) -> (&'static str, &'static [&'static str], Option<&'static str>) {
    match arch {
        Arch::Llama => (
            "<|begin_of_text|>",
            &["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"],
            None,
        ),
        Arch::Qwen2 | Arch::Qwen3 => (
            "<|endoftext|>",
            &["<|im_end|>", "<|endoftext|>"],
            Some("<|endoftext|>"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen3_think_tokens_sit_at_the_real_offsets() {
        let a = added_tokens(Arch::Qwen3);
        let base = 151_643;
        let id = |c: &str| a.iter().position(|t| t.content == c).map(|i| base + i);
        assert_eq!(id("<|endoftext|>"), Some(151_643));
        assert_eq!(id("<|im_end|>"), Some(151_645));
        assert_eq!(id("<tool_call>"), Some(151_657));
        assert_eq!(id("<|file_sep|>"), Some(151_664));
        assert_eq!(id("<think>"), Some(151_667));
        assert_eq!(id("</think>"), Some(151_668));
        assert_eq!(added_tokens(Arch::Qwen2).len(), 22);
    }
}
