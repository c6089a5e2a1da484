//! The few GGUF metadata values that Ollama's listings show (architecture, size label,
//! context length, chat template), read from the file header.
//!
//! Invariants:
//! - Read-only and bounded: strings over [`MAX_STRING`] or a key count over [`MAX_KEYS`] end the
//!   read, so a damaged file costs at most a few megabytes of reading; any error gives what was
//!   read so far (listings degrade to empty fields, never fail).
//! - Values of other types are skipped by their sizes without being kept.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

const MAX_STRING: u64 = 16 << 20;
const MAX_KEYS: u64 = 1 << 16;
/// Keys whose values are kept.
const WANTED: &[&str] = &[
    "general.architecture",
    "general.size_label",
    "general.file_type",
    "tokenizer.chat_template",
];

/// Kept metadata: strings and integers as text.
pub type Metadata = HashMap<String, String>;

/// The wanted keys and every `<arch>.context_length`-style key ending in `.context_length`.
pub fn read(path: &Path) -> Metadata {
    let mut out = Metadata::new();
    if let Ok(file) = File::open(path) {
        let _ = read_into(&mut BufReader::new(file), &mut out);
    }
    out
}

fn u32_of(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn u64_of(r: &mut impl Read) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

fn string(r: &mut impl Read) -> std::io::Result<String> {
    let len = u64_of(r)?;
    if len > MAX_STRING {
        return Err(bad("string too long"));
    }
    let mut b = vec![0u8; len as usize];
    r.read_exact(&mut b)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// Bytes of a fixed-size value type, or `None` for strings and arrays.
fn fixed_size(kind: u32) -> Option<u64> {
    match kind {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// Reads one value of `kind`: kept as text for integers and strings when `keep`.
fn value<R: Read + Seek>(r: &mut R, kind: u32, keep: bool) -> std::io::Result<Option<String>> {
    match (kind, fixed_size(kind)) {
        (8, _) if keep => string(r).map(Some),
        (8, _) => {
            let len = u64_of(r)?;
            r.seek(SeekFrom::Current(
                i64::try_from(len).map_err(|_| bad("length"))?,
            ))?;
            Ok(None)
        }
        (9, _) => {
            let elem = u32_of(r)?;
            let count = u64_of(r)?;
            match fixed_size(elem) {
                Some(size) => {
                    let bytes = count.checked_mul(size).ok_or_else(|| bad("array size"))?;
                    r.seek(SeekFrom::Current(
                        i64::try_from(bytes).map_err(|_| bad("array"))?,
                    ))?;
                }
                None => {
                    for _ in 0..count {
                        value(r, elem, false)?;
                    }
                }
            }
            Ok(None)
        }
        (_, Some(size)) => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b[..size as usize])?;
            let n = u64::from_le_bytes(b);
            Ok((keep && matches!(kind, 0 | 2 | 4 | 10 | 5 | 11)).then(|| n.to_string()))
        }
        _ => Err(bad("unknown value type")),
    }
}

fn read_into<R: Read + Seek>(r: &mut R, out: &mut Metadata) -> std::io::Result<()> {
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)?;
    if &magic != b"GGUF" || u32_of(r)? < 2 {
        return Err(bad("not a GGUF v2+ file"));
    }
    let _tensors = u64_of(r)?;
    let keys = u64_of(r)?.min(MAX_KEYS);
    for _ in 0..keys {
        let key = string(r)?;
        let kind = u32_of(r)?;
        let keep = WANTED.contains(&key.as_str()) || key.ends_with(".context_length");
        if let Some(v) = value(r, kind, keep)? {
            out.insert(key, v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn s(b: &mut Vec<u8>, text: &str) {
        b.extend((text.len() as u64).to_le_bytes());
        b.extend(text.as_bytes());
    }

    #[test]
    fn reads_wanted_keys_past_arrays() {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(5u64.to_le_bytes());
        s(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "llama");
        s(&mut b, "tokenizer.ggml.tokens");
        b.extend(9u32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        s(&mut b, "a");
        s(&mut b, "bc");
        s(&mut b, "tokenizer.ggml.scores");
        b.extend(9u32.to_le_bytes());
        b.extend(6u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend([0u8; 8]);
        s(&mut b, "llama.context_length");
        b.extend(4u32.to_le_bytes());
        b.extend(8192u32.to_le_bytes());
        s(&mut b, "tokenizer.chat_template");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "{{ messages }}");
        let mut out = Metadata::new();
        read_into(&mut Cursor::new(b), &mut out).expect("valid");
        assert_eq!(out["general.architecture"], "llama");
        assert_eq!(out["llama.context_length"], "8192");
        assert_eq!(out["tokenizer.chat_template"], "{{ messages }}");
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn garbage_gives_nothing() {
        let mut out = Metadata::new();
        assert!(read_into(&mut Cursor::new(b"GGML0000".to_vec()), &mut out).is_err());
        assert!(out.is_empty());
    }
}
