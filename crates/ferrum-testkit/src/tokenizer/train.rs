//! Learns a small byte-level BPE from a built-in text (`corpus.txt`), deterministically.
//!
//! Classic BPE training: split the text into words roughly as the pre-tokenizer regex does,
//! start from bytes, and repeatedly merge the most frequent adjacent pair (ties go to the
//! smallest pair of ids, so the result never depends on hash-map order). The split only
//! shapes which merges are learned; any merge list is a valid tokenizer.

use std::collections::{BTreeMap, HashMap};

use super::byte_level::byte_order;
use super::BpeVocab;

const CORPUS: &str = include_str!("corpus.txt");

/// A vocabulary of the 256 byte tokens plus up to `merges` learned merges.
pub fn train_tiny(merges: usize, max_digits: usize) -> BpeVocab {
    let order = byte_order();
    let mut id_of_byte = [0u32; 256];
    for (id, &b) in order.iter().enumerate() {
        id_of_byte[b as usize] = id as u32;
    }
    let mut vocab = BpeVocab {
        tokens: order.iter().map(|&b| vec![b]).collect(),
        merges: Vec::new(),
    };
    let mut index: HashMap<Vec<u8>, u32> = vocab
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();

    // BTreeMap: words in byte order, so every pass sees them in the same order.
    let mut counts: BTreeMap<&[u8], u64> = BTreeMap::new();
    for word in split_words(CORPUS, max_digits) {
        *counts.entry(word.as_bytes()).or_default() += 1;
    }
    let mut words: Vec<(Vec<u32>, u64)> = counts
        .into_iter()
        .map(|(w, n)| (w.iter().map(|&b| id_of_byte[b as usize]).collect(), n))
        .collect();

    for _ in 0..merges {
        let mut pairs: HashMap<(u32, u32), u64> = HashMap::new();
        for (ids, n) in &words {
            for w in ids.windows(2) {
                *pairs.entry((w[0], w[1])).or_default() += n;
            }
        }
        let best = pairs
            .into_iter()
            .filter(|&(_, n)| n >= 2)
            .max_by(|(pa, na), (pb, nb)| na.cmp(nb).then(pb.cmp(pa)));
        let Some(((a, b), _)) = best else { break };
        let bytes = [
            vocab.tokens[a as usize].as_slice(),
            &vocab.tokens[b as usize],
        ]
        .concat();
        let merged = *index.entry(bytes.clone()).or_insert_with(|| {
            vocab.tokens.push(bytes);
            (vocab.tokens.len() - 1) as u32
        });
        vocab.merges.push((a, b));
        for (ids, _) in &mut words {
            *ids = merge_pair(ids, (a, b), merged);
        }
    }
    vocab
}

fn merge_pair(ids: &[u32], pair: (u32, u32), merged: u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(ids.len());
    let mut i = 0;
    while i < ids.len() {
        if i + 1 < ids.len() && (ids[i], ids[i + 1]) == pair {
            out.push(merged);
            i += 2;
        } else {
            out.push(ids[i]);
            i += 1;
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Newline,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Digit
    } else if c == '\n' || c == '\r' {
        Class::Newline
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// Words as the Qwen/Llama-3 pre-tokenizer regex roughly splits them: an optional leading
/// non-letter then letters; digit groups of at most `max_digits`; an optional space then
/// punctuation; whitespace runs (a run before a word leaves its last space to that word).
fn split_words(text: &str, max_digits: usize) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let cls = |i: usize| chars.get(i).map(|&(_, c)| class(c));
    let at = |i: usize| chars.get(i).map_or(text.len(), |&(p, _)| p);
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let here = cls(i);
        let next = cls(i + 1);
        if here == Some(Class::Letter)
            || (matches!(here, Some(Class::Space | Class::Other)) && next == Some(Class::Letter))
        {
            i += 1;
            while cls(i) == Some(Class::Letter) {
                i += 1;
            }
        } else if here == Some(Class::Digit) {
            while cls(i) == Some(Class::Digit) && i - start < max_digits {
                i += 1;
            }
        } else if here == Some(Class::Other) || (chars[i].1 == ' ' && next == Some(Class::Other)) {
            i += 1;
            while cls(i) == Some(Class::Other) {
                i += 1;
            }
        } else {
            while matches!(cls(i), Some(Class::Space | Class::Newline)) {
                i += 1;
            }
            // `\s+(?!\S)`: leave one space for the word that follows.
            if i < chars.len() && i - start > 1 && cls(i - 1) == Some(Class::Space) {
                i -= 1;
            }
        }
        words.push(&text[at(start)..at(i)]);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_leading_space_with_word() {
        let w = split_words("Hello  world, 2024!\n", 1);
        assert_eq!(
            w,
            vec!["Hello", " ", " world", ",", " ", "2", "0", "2", "4", "!", "\n"]
        );
        assert_eq!(split_words("x 2024", 3), vec!["x", " ", "202", "4"]);
    }

    #[test]
    fn training_is_deterministic_and_learns_words() {
        let a = train_tiny(200, 1);
        let b = train_tiny(200, 1);
        assert_eq!(a, b);
        assert_eq!(a.merges.len(), 200);
        assert!(a.tokens.iter().any(|t| t == b" the"));
    }
}
