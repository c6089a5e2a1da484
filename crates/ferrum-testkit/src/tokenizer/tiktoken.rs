//! Reads a tiktoken rank file (`base64token rank` per line) into a BPE vocabulary with merges.
//!
//! tiktoken has no merge list: it repeatedly joins the adjacent pair whose concatenation has
//! the lowest rank. HF's BPE needs merges, so for each multi-byte token we replay tiktoken's
//! procedure on the token's own bytes using only lower ranks; it ends in exactly two parts,
//! and that pair is the token's merge. Ordering merges by the token's rank makes HF's "lowest
//! merge index first" equal tiktoken's "lowest rank first".

use std::collections::HashMap;
use std::path::Path;

use super::BpeVocab;
use crate::error::{io_err, Result, TestkitError};

/// Loads `qwen.tiktoken` (or any tiktoken rank file whose ranks are 0..n without gaps).
pub fn load_tiktoken(path: &Path) -> Result<BpeVocab> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let vocab_err = |line: usize, reason: String| TestkitError::Vocab {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut tokens = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let (b64, rank) = line
            .split_once(' ')
            .ok_or_else(|| vocab_err(n + 1, "expected `base64token rank`".into()))?;
        let rank: usize = rank
            .trim()
            .parse()
            .map_err(|_| vocab_err(n + 1, format!("rank {rank:?} is not a number")))?;
        if rank != tokens.len() {
            return Err(vocab_err(
                n + 1,
                format!("rank {rank}, expected {}", tokens.len()),
            ));
        }
        let bytes = decode_base64(b64).ok_or_else(|| vocab_err(n + 1, "bad base64".into()))?;
        tokens.push(bytes);
    }
    let ranks: HashMap<&[u8], u32> = tokens
        .iter()
        .enumerate()
        .map(|(r, t)| (t.as_slice(), r as u32))
        .collect();
    if ranks.len() != tokens.len() {
        return Err(vocab_err(0, "duplicate tokens".into()));
    }
    if let Some(b) = (0..=255u8).find(|b| !ranks.contains_key([*b].as_slice())) {
        return Err(vocab_err(0, format!("byte {b:#04x} has no token")));
    }

    let mut merges = Vec::new();
    for (rank, token) in tokens.iter().enumerate() {
        if token.len() < 2 {
            continue;
        }
        let parts = bpe_parts(token, &ranks, rank as u32);
        if let [left, right] = parts.as_slice() {
            let id = |s: &[u8]| ranks.get(s).copied().unwrap_or(u32::MAX);
            merges.push((id(left), id(right)));
        }
        // More than two parts: tiktoken's BPE itself can never produce this token from its
        // bytes, so no merge can reproduce it either; it stays in the vocab unreachable.
    }
    Ok(BpeVocab { tokens, merges })
}

/// tiktoken's merge loop on `bytes`, allowed to use only ranks below `max_rank`.
fn bpe_parts<'a>(bytes: &'a [u8], ranks: &HashMap<&[u8], u32>, max_rank: u32) -> Vec<&'a [u8]> {
    let mut bounds: Vec<usize> = (0..=bytes.len()).collect();
    loop {
        let best = (0..bounds.len().saturating_sub(2))
            .filter_map(|i| {
                let r = *ranks.get(&bytes[bounds[i]..bounds[i + 2]])?;
                (r < max_rank).then_some((r, i))
            })
            .min();
        match best {
            Some((_, i)) => {
                bounds.remove(i + 1);
            }
            None => break,
        }
    }
    bounds.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// Standard base64 (RFC 4648, `+/`, `=` padding).
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim().trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let n = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(decode_base64("IQ==").as_deref(), Some(&b"!"[..]));
        assert_eq!(
            decode_base64("4rqf").as_deref(),
            Some(&[0xe2, 0xba, 0x9f][..])
        );
        assert_eq!(decode_base64("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64("a*=="), None);
    }

    #[test]
    fn merges_follow_rank_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.tiktoken");
        // 256 byte tokens, then "ab" (256), "bc" (257), "abc" (258).
        let mut text = String::new();
        let enc = |b: &[u8]| {
            // Tiny encoder for the test only.
            const A: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut s = String::new();
            for c in b.chunks(3) {
                let mut n = [0u8; 3];
                n[..c.len()].copy_from_slice(c);
                let v = u32::from(n[0]) << 16 | u32::from(n[1]) << 8 | u32::from(n[2]);
                for i in 0..=c.len() {
                    s.push(A[(v >> (18 - 6 * i) & 63) as usize] as char);
                }
                s.push_str(&"=".repeat(3 - c.len()));
            }
            s
        };
        for b in 0..=255u8 {
            text += &format!("{} {}\n", enc(&[b]), b);
        }
        text += &format!(
            "{} 256\n{} 257\n{} 258\n",
            enc(b"ab"),
            enc(b"bc"),
            enc(b"abc")
        );
        std::fs::write(&path, text).unwrap();
        let v = load_tiktoken(&path).unwrap();
        // "abc": with ranks < 258, "ab" (256) beats "bc" (257), so the merge is ("ab", "c").
        assert_eq!(v.merges, vec![(97, 98), (98, 99), (256, 99)]);
    }
}
