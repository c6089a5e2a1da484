//! Request and tool-call ids.
//!
//! Invariant: ids are unique within the process even if the OS random source fails (a counter
//! is mixed in), because engine request ids must never collide.

use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `prefix` followed by 32 hex digits.
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes[..8].copy_from_slice(&nanos.to_le_bytes());
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    for (b, c) in bytes[8..].iter_mut().zip(n.to_le_bytes()) {
        *b ^= c;
    }
    let mut s = String::with_capacity(prefix.len() + 32);
    s.push_str(prefix);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_differ() {
        let a = super::new_id("chatcmpl-");
        let b = super::new_id("chatcmpl-");
        assert_ne!(a, b);
        assert_eq!(a.len(), "chatcmpl-".len() + 32);
    }
}
