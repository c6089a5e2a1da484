//! Streaming detokenization on a byte-level vocabulary where every byte is its own token, so
//! multi-byte characters (emoji, CJK) always arrive split across tokens.

use ferrum_tokenizer::{GgufVocab, IncrementalDecoder, Tokenizer};

/// GPT-2's byte → printable character table.
fn byte_level_alphabet() -> Vec<char> {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut extra = 0;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).expect("latin-1")
            } else {
                extra += 1;
                char::from_u32(255 + extra).expect("shifted")
            }
        })
        .collect()
}

/// Byte tokens 0..256, then `<|im_end|>` (control) at 256, plus the merges `Ġ t` and `Ġt e`.
fn byte_tokenizer() -> Tokenizer {
    let mut tokens: Vec<String> = byte_level_alphabet().iter().map(char::to_string).collect();
    tokens.push("<|im_end|>".to_string());
    tokens.push("Ġt".to_string());
    tokens.push("Ġte".to_string());
    let mut token_types = vec![1; tokens.len()];
    token_types[256] = 3;
    Tokenizer::from_gguf_vocab(GgufVocab {
        model: "gpt2".into(),
        pre: Some("smollm".into()),
        tokens,
        token_types: Some(token_types),
        merges: Some(vec!["Ġ t".into(), "Ġt e".into()]),
        eos_token_id: Some(256),
        ..GgufVocab::default()
    })
    .expect("toy vocabulary builds")
}

const TEXTS: &[&str] = &[
    "emoji 😀👍🏽 test",
    "你好，世界！日本語のテキスト",
    "naïve café déjà vu — ÄÖÜ ß",
    "mixed 🇫🇷 flags and text<|im_end|>",
];

fn stream(tokenizer: &Tokenizer, ids: &[u32], chunk: usize, skip_special: bool) -> String {
    let mut decoder = IncrementalDecoder::new(skip_special);
    let mut out = String::new();
    for piece_ids in ids.chunks(chunk) {
        let piece = decoder.step(tokenizer, piece_ids).expect("steps");
        assert!(
            !piece.contains('\u{FFFD}'),
            "half a character emitted: {piece:?}"
        );
        out.push_str(&piece);
    }
    out + &decoder.finish(tokenizer).expect("finishes")
}

#[test]
fn multi_byte_characters_are_split_across_tokens() {
    let tokenizer = byte_tokenizer();
    let ids = tokenizer.encode("😀", false).expect("encodes");
    assert_eq!(ids.len(), 4, "one token per byte");
    assert_eq!(
        tokenizer.encode(" test", false).expect("encodes")[0],
        258,
        "merges apply"
    );
}

#[test]
fn concatenated_steps_equal_the_full_decode() {
    let tokenizer = byte_tokenizer();
    for text in TEXTS {
        let ids = tokenizer.encode(text, false).expect("encodes");
        for skip_special in [false, true] {
            let full = tokenizer.decode(&ids, skip_special).expect("decodes");
            for chunk in [1, 2, 3, 7] {
                assert_eq!(
                    stream(&tokenizer, &ids, chunk, skip_special),
                    full,
                    "{text:?} chunk {chunk}"
                );
            }
        }
    }
}

#[test]
fn incomplete_characters_are_held_back_until_complete() {
    let tokenizer = byte_tokenizer();
    let ids = tokenizer.encode("a😀", false).expect("encodes");
    let mut decoder = IncrementalDecoder::new(false);
    assert_eq!(decoder.step(&tokenizer, &ids[..1]).expect("steps"), "a");
    for id in &ids[1..4] {
        assert_eq!(decoder.step(&tokenizer, &[*id]).expect("steps"), "");
    }
    assert_eq!(decoder.step(&tokenizer, &ids[4..]).expect("steps"), "😀");
    assert_eq!(decoder.generated_ids(), ids.as_slice());
}

#[test]
fn a_sequence_cut_mid_character_ends_with_a_replacement_character() {
    let tokenizer = byte_tokenizer();
    let ids = tokenizer.encode("ok😀", false).expect("encodes");
    let mut decoder = IncrementalDecoder::new(false);
    assert_eq!(decoder.step(&tokenizer, &ids[..2]).expect("steps"), "ok");
    assert_eq!(decoder.step(&tokenizer, &ids[2..4]).expect("steps"), "");
    assert_eq!(decoder.finish(&tokenizer).expect("finishes"), "\u{FFFD}");
}

#[test]
fn prompt_context_keeps_the_text_after_the_prompt() {
    let tokenizer = byte_tokenizer();
    let prompt = tokenizer.encode("question: 你", false).expect("encodes");
    let generated = tokenizer.encode("好 test 👍🏽", false).expect("encodes");
    let mut decoder = IncrementalDecoder::with_prompt(&prompt, false);
    let mut out = String::new();
    for id in &generated {
        out.push_str(&decoder.step(&tokenizer, &[*id]).expect("steps"));
    }
    out.push_str(&decoder.finish(&tokenizer).expect("finishes"));
    assert_eq!(out, "好 test 👍🏽");
    assert_eq!(decoder.generated_ids(), generated.as_slice());
}
