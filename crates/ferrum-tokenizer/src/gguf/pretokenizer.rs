//! Pre-tokenizer regexes of byte-level BPE vocabularies, keyed by GGUF `tokenizer.ggml.pre`.
//!
//! Invariants:
//! - The names and the regex lists follow llama.cpp's `llama-vocab`, so a GGUF file splits its
//!   text exactly where llama.cpp splits it and the ids match llama.cpp's.
//! - The regexes of one list are applied in order, each splitting every piece left by the previous
//!   one; matches and the text between matches both become pieces (HF `Split` with `Isolated`).
//! - An unknown name is an error, as in llama.cpp: a wrong split silently degrades generation.

use crate::error::{Result, TokenizerError};

/// How one `tokenizer.ggml.pre` value tokenizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PreTokenizerSpec {
    pub regexes: &'static [&'static str],
    /// A word found whole in the vocabulary is one token, without applying merges (Llama 3).
    pub ignore_merges: bool,
    /// llama.cpp's `add_bos` default for this family when the GGUF has no `add_bos_token`.
    pub add_bos_by_default: bool,
}

/// The GPT-2 pattern, which most families reuse.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

/// Llama 3's pattern with the case-insensitive contractions spelled out.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's pattern: Llama 3's with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const DEFAULT: &[&str] = &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"];

const DIGITS_THEN_GPT2: &[&str] = &[r"\p{N}", GPT2];

const FALCON: &[&str] = &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"];

const DEEPSEEK_LLM: &[&str] = &[
    r"[\r\n]",
    // Cased letters outside CJK, as escapes: written literally, canonical normalization by an
    // editor would fold Ω (U+2126), K (U+212A) and a few Greek letters into other code points.
    concat!(
        r"\s?[A-Za-z",
        r"\x{00B5}\x{00C0}-\x{00D6}\x{00D8}-\x{00F6}\x{00F8}-\x{01BA}\x{01BC}-\x{01BF}",
        r"\x{01C4}-\x{0293}\x{0295}-\x{02AF}\x{0370}-\x{0373}\x{0376}\x{0377}",
        r"\x{037B}-\x{037D}\x{037F}\x{0386}\x{0388}-\x{038A}\x{038C}\x{038E}-\x{03A1}",
        r"\x{03A3}-\x{03F5}\x{03F7}-\x{0481}\x{048A}-\x{052F}\x{0531}-\x{0556}",
        r"\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}",
        r"\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}",
        r"\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}",
        r"\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}",
        r"\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}",
        r"\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}",
        r"\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}",
        r"\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}",
        r"\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}",
        r"\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}",
        r"\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}",
        r"\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}",
        r"\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}",
        r"\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}",
        "]+"
    ),
    r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
    r"\s+$",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}+",
];

const DEEPSEEK_CODER: &[&str] = &[
    r"[\r\n]",
    r"\s?\p{L}+",
    r"\s?\p{P}+",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}",
];

const DEEPSEEK_V3: &[&str] = &[
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];

const BLOOM: &[&str] = &[r" ?[^(\s|.,!?…。，、।۔،)]+"];

const VIKING: &[&str] = &[r" ?[^(\s|.,!?…。，、।۔،)]+", r"\p{N}"];

/// Tekken's pattern as its tokenizer.json writes it (the Unicode classes are exact here).
const TEKKEN: &[&str] = &[
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];

/// The GPT-4o / Llama 4 pattern as its tokenizer.json writes it.
const GPT4O: &[&str] = &[
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
];

const fn spec(regexes: &'static [&'static str]) -> PreTokenizerSpec {
    PreTokenizerSpec {
        regexes,
        ignore_merges: false,
        add_bos_by_default: false,
    }
}

/// The spec for a `tokenizer.ggml.pre` value (`None` or empty means llama.cpp's "default").
pub(crate) fn pre_tokenizer_spec(pre: Option<&str>) -> Result<PreTokenizerSpec> {
    let name = pre.unwrap_or("default");
    let llama3 = PreTokenizerSpec {
        regexes: &[LLAMA3],
        ignore_merges: true,
        add_bos_by_default: true,
    };
    Ok(match name {
        "" | "default" => spec(DEFAULT),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" => llama3,
        "dbrx" | "smaug-bpe" | "chatglm-bpe" | "glm4" => spec(&[LLAMA3]),
        "qwen2" | "deepseek-r1-qwen" | "megrez" | "stablelm2" | "hunyuan" | "grok-2" => {
            spec(&[QWEN2])
        }
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" => {
            spec(DIGITS_THEN_GPT2)
        }
        "gpt2" | "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" | "trillion" | "exaone4"
        | "jina-es" | "jina-de" | "jina-v1-en" | "jina-v2-es" | "jina-v2-de" | "jina-v2-code"
        | "roberta-bpe" | "gigachat" | "granite-docling" => spec(&[GPT2]),
        "falcon" => spec(FALCON),
        "deepseek-llm" => spec(DEEPSEEK_LLM),
        "deepseek-coder" => spec(DEEPSEEK_CODER),
        "deepseek-v3" | "hunyuan-dense" => spec(DEEPSEEK_V3),
        "poro-chat" | "bloom" | "gpt3-finnish" => spec(BLOOM),
        "viking" => spec(VIKING),
        "tekken" => PreTokenizerSpec {
            regexes: TEKKEN,
            ignore_merges: true,
            add_bos_by_default: true,
        },
        "gpt-4o" | "llama4" | "minimax-m2" => spec(GPT4O),
        other => {
            return Err(TokenizerError::Unsupported(format!(
                "GGUF pre-tokenizer `{other}` is not known; known ones follow llama.cpp \
                 (default, llama-bpe, qwen2, smollm, gpt-2, deepseek-llm, …)"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_regex_compiles() {
        for regexes in [
            DEFAULT,
            DIGITS_THEN_GPT2,
            FALCON,
            DEEPSEEK_LLM,
            DEEPSEEK_CODER,
            DEEPSEEK_V3,
            BLOOM,
            VIKING,
            TEKKEN,
            GPT4O,
            &[GPT2, LLAMA3, QWEN2][..],
        ] {
            for regex in regexes {
                if let Err(e) = fancy_regex_check(regex) {
                    panic!("{regex}: {e}");
                }
            }
        }
    }

    fn fancy_regex_check(regex: &str) -> std::result::Result<(), String> {
        tokenizers::pre_tokenizers::split::Split::new(
            tokenizers::pre_tokenizers::split::SplitPattern::Regex(regex.to_string()),
            tokenizers::SplitDelimiterBehavior::Isolated,
            false,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    #[test]
    fn llama3_family_ignores_merges_and_adds_bos() {
        let spec = pre_tokenizer_spec(Some("llama-bpe")).expect("known");
        assert!(spec.ignore_merges && spec.add_bos_by_default);
        let spec = pre_tokenizer_spec(Some("smollm")).expect("known");
        assert_eq!(spec.regexes, DIGITS_THEN_GPT2);
        assert!(!spec.add_bos_by_default);
    }

    #[test]
    fn unknown_name_is_refused() {
        let err = pre_tokenizer_spec(Some("no-such-pre")).expect_err("unknown");
        assert!(err.to_string().contains("no-such-pre"));
    }
}
