//! `tokenizer.json` in the layout the `tokenizers` library reads and writes.
//!
//! Qwen flavour: NFC normalizer, Split(Qwen2 regex, Isolated) + ByteLevel(no regex), BPE with
//! `ignore_merges: false`. Llama-3 flavour: no normalizer, Split(Llama-3 regex) + ByteLevel,
//! BPE with `ignore_merges: true`, and a TemplateProcessing post-processor that prepends
//! `<|begin_of_text|>` when special tokens are added, as Llama-3's own file does.

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::specials::AddedToken;
use crate::spec::Arch;

/// Qwen2's pre-tokenizer pattern (one digit per piece).
pub const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama-3's pre-tokenizer pattern (up to three digits per piece).
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A map serialized in the given order (JSON objects from a `Vec`, e.g. vocab in id order).
pub struct OrderedMap<K, V>(pub Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for OrderedMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct TokenizerJson<'a> {
    version: &'static str,
    truncation: Option<()>,
    padding: Option<()>,
    added_tokens: Vec<AddedTokenJson<'a>>,
    normalizer: Option<Normalizer>,
    pre_tokenizer: PreTokenizer,
    post_processor: PostProcessor,
    decoder: PreTokenizer,
    model: BpeModel<'a>,
}

#[derive(Serialize)]
struct AddedTokenJson<'a> {
    id: u32,
    content: &'a str,
    single_word: bool,
    lstrip: bool,
    rstrip: bool,
    normalized: bool,
    special: bool,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum Normalizer {
    #[serde(rename = "NFC")]
    Nfc,
}

#[derive(Serialize)]
struct RegexPattern {
    #[serde(rename = "Regex")]
    regex: &'static str,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum PreTokenizer {
    Sequence {
        pretokenizers: Vec<PreTokenizer>,
    },
    Split {
        pattern: RegexPattern,
        behavior: &'static str,
        invert: bool,
    },
    ByteLevel {
        add_prefix_space: bool,
        trim_offsets: bool,
        use_regex: bool,
    },
}

#[derive(Serialize)]
enum Piece {
    SpecialToken { id: String, type_id: u32 },
    Sequence { id: &'static str, type_id: u32 },
}

#[derive(Serialize)]
struct SpecialTokenDef {
    id: String,
    ids: Vec<u32>,
    tokens: Vec<String>,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum PostProcessor {
    Sequence {
        processors: Vec<PostProcessor>,
    },
    ByteLevel {
        add_prefix_space: bool,
        trim_offsets: bool,
        use_regex: bool,
    },
    TemplateProcessing {
        single: Vec<Piece>,
        pair: Vec<Piece>,
        special_tokens: BTreeMap<String, SpecialTokenDef>,
    },
}

#[derive(Serialize)]
struct BpeModel<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    dropout: Option<f64>,
    unk_token: Option<&'a str>,
    continuing_subword_prefix: Option<&'static str>,
    end_of_word_suffix: Option<&'static str>,
    fuse_unk: bool,
    byte_fallback: bool,
    ignore_merges: bool,
    vocab: OrderedMap<&'a str, u32>,
    merges: Vec<String>,
}

/// What `tokenizer_json` needs: vocab strings by id, merges as (left, right) vocab strings,
/// and the added tokens with their ids.
pub struct TokenizerParts<'a> {
    pub arch: Arch,
    pub vocab: &'a [String],
    pub merges: Vec<(&'a str, &'a str)>,
    pub added: &'a [(u32, AddedToken)],
    pub bos: (&'a str, u32),
}

/// The text of `tokenizer.json`.
pub fn tokenizer_json(p: &TokenizerParts<'_>) -> serde_json::Result<String> {
    let qwen = p.arch != Arch::Llama;
    let byte_level = |add_prefix_space, trim_offsets, use_regex| PreTokenizer::ByteLevel {
        add_prefix_space,
        trim_offsets,
        use_regex,
    };
    let pre_tokenizer = PreTokenizer::Sequence {
        pretokenizers: vec![
            PreTokenizer::Split {
                pattern: RegexPattern {
                    regex: if qwen { QWEN2_PATTERN } else { LLAMA3_PATTERN },
                },
                behavior: "Isolated",
                invert: false,
            },
            byte_level(false, !qwen, false),
        ],
    };
    let post_processor = if qwen {
        PostProcessor::ByteLevel {
            add_prefix_space: false,
            trim_offsets: false,
            use_regex: false,
        }
    } else {
        llama_post_processor(p.bos)
    };
    let json = TokenizerJson {
        version: "1.0",
        truncation: None,
        padding: None,
        added_tokens: p
            .added
            .iter()
            .map(|(id, t)| AddedTokenJson {
                id: *id,
                content: t.content,
                single_word: false,
                lstrip: false,
                rstrip: false,
                normalized: false,
                special: t.special,
            })
            .collect(),
        normalizer: qwen.then_some(Normalizer::Nfc),
        pre_tokenizer,
        post_processor,
        decoder: byte_level(false, false, false),
        model: BpeModel {
            kind: "BPE",
            dropout: None,
            unk_token: None,
            continuing_subword_prefix: qwen.then_some(""),
            end_of_word_suffix: qwen.then_some(""),
            fuse_unk: false,
            byte_fallback: false,
            ignore_merges: !qwen,
            vocab: OrderedMap(
                p.vocab
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.as_str(), i as u32))
                    .collect(),
            ),
            merges: p.merges.iter().map(|(a, b)| format!("{a} {b}")).collect(),
        },
    };
    Ok(serde_json::to_string_pretty(&json)? + "\n")
}

fn llama_post_processor((bos, bos_id): (&str, u32)) -> PostProcessor {
    let special = |type_id| Piece::SpecialToken {
        id: bos.to_string(),
        type_id,
    };
    let seq = |id, type_id| Piece::Sequence { id, type_id };
    let special_tokens = BTreeMap::from([(
        bos.to_string(),
        SpecialTokenDef {
            id: bos.to_string(),
            ids: vec![bos_id],
            tokens: vec![bos.to_string()],
        },
    )]);
    PostProcessor::Sequence {
        processors: vec![
            PostProcessor::ByteLevel {
                add_prefix_space: true,
                trim_offsets: false,
                use_regex: true,
            },
            PostProcessor::TemplateProcessing {
                single: vec![special(0), seq("A", 0)],
                pair: vec![special(0), seq("A", 0), special(1), seq("B", 1)],
                special_tokens,
            },
        ],
    }
}
