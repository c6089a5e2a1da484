//! The byte-level alphabet of GPT-2-style BPE: every byte is shown as one printable char.
//!
//! Printable Latin-1 bytes (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves; the other 68
//! bytes are given the chars U+0100, U+0101, … in byte order. `tokenizers`' ByteLevel
//! pre-tokenizer and decoder use the same table, so vocab strings must be written with it.
//! Byte token ids follow the table's order (printables first): that is the order of the first
//! 256 ranks in Qwen's vocabulary, and we use it for the tiny vocabulary too.

/// Whether a byte is shown as itself.
fn is_printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The char that stands for each byte.
pub fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        table[b as usize] = if is_printable(b) {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or('\u{FFFD}');
            next += 1;
            c
        };
    }
    table
}

/// Bytes in id order for the 256 byte tokens: printables ascending, then the rest ascending.
pub fn byte_order() -> Vec<u8> {
    let printable = (0..=255u8).filter(|&b| is_printable(b));
    let rest = (0..=255u8).filter(|&b| !is_printable(b));
    printable.chain(rest).collect()
}

/// The vocab string of a token's bytes.
pub fn token_string(table: &[char; 256], bytes: &[u8]) -> String {
    bytes.iter().map(|&b| table[b as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_mappings() {
        let t = byte_to_char();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[0], 'Ā');
    }

    #[test]
    fn order_is_a_permutation_starting_with_bang() {
        let o = byte_order();
        assert_eq!(o.len(), 256);
        assert_eq!(o[0], b'!');
        let mut sorted = o.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
    }
}
