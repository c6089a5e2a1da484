//! Chained block hashes: `h_i = H(h_{i-1}, tokens of block i, extra keys)`.
//!
//! Why SipHash-1-3 with 128-bit output and a random key:
//! - prompts are chosen by clients, so the hash must be keyed: without the per-manager random key
//!   (drawn from the OS at start-up) nobody can build colliding prompts offline, which rules out
//!   unkeyed fast hashes (xxh3 has seed-independent collisions); SipHash is designed as a keyed
//!   PRF for exactly this;
//! - 128 bits makes an accidental collision among 2^32 cached blocks a 2^-64 event;
//! - it is small and fast on 64-byte inputs (a 16-token block), unlike a cryptographic tree
//!   hash such as BLAKE3 whose advantages only show on long inputs.
//!
//! The hash only *finds* candidates: a hit is accepted after the pool compares the stored token
//! ids, extra-key digest and parent block exactly (see `pool.rs`), so even a collision cannot
//! hand out wrong KV.

use std::hash::Hasher;

use ferrum_types::TokenId;
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::KvCacheError;

/// Hash of a full block and, through the chain, of every token before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockHash(pub u128);

/// Request properties other than token ids that change the KV and so must split the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraKeys {
    /// Per-tenant salt: requests with different salts never share blocks.
    pub cache_salt: Option<String>,
    /// Adapter (LoRA) id: the same tokens give different KV under different adapters.
    pub adapter_id: Option<u32>,
}

impl ExtraKeys {
    pub fn is_empty(&self) -> bool {
        self.cache_salt.is_none() && self.adapter_id.is_none()
    }
}

/// 128-bit digest of [`ExtraKeys`]; zero means "no extra keys".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ExtraDigest(pub(crate) u128);

#[derive(Debug, Clone)]
enum Kind {
    Sip {
        k0: u64,
        k1: u64,
    },
    /// Deliberately colliding hash so tests can exercise the verification path.
    #[cfg(test)]
    Weak {
        mask: u128,
    },
}

/// Computes block hashes under one key.
#[derive(Debug, Clone)]
pub struct BlockHasher {
    kind: Kind,
}

impl BlockHasher {
    /// A hasher with a key drawn from the operating system's random source.
    pub fn random() -> Result<Self, KvCacheError> {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).map_err(|e| KvCacheError::Entropy(e.to_string()))?;
        let (a, b) = key.split_at(8);
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(a);
        k1.copy_from_slice(b);
        Ok(Self::with_key(
            u64::from_le_bytes(k0),
            u64::from_le_bytes(k1),
        ))
    }

    /// A hasher with a fixed key (reproducible runs and tests).
    pub fn with_key(k0: u64, k1: u64) -> Self {
        Self {
            kind: Kind::Sip { k0, k1 },
        }
    }

    /// Keeps only `bits` bits of a trivially weak hash, so that different blocks collide often.
    #[cfg(test)]
    pub(crate) fn weak(bits: u32) -> Self {
        Self {
            kind: Kind::Weak {
                mask: (1u128 << bits) - 1,
            },
        }
    }

    pub(crate) fn extra_digest(&self, extra: &ExtraKeys) -> ExtraDigest {
        if extra.is_empty() {
            return ExtraDigest(0);
        }
        let mut h = self.start(b'x');
        // Tagged, length-prefixed fields so ("ab", None) and ("a", Some(..)) cannot alias.
        if let Some(salt) = &extra.cache_salt {
            h.write_u8(1);
            h.write_u64(salt.len() as u64);
            h.write(salt.as_bytes());
        }
        if let Some(id) = extra.adapter_id {
            h.write_u8(2);
            h.write_u32(id);
        }
        // Never zero, so "no extras" stays distinguishable.
        ExtraDigest(finish(h, self).max(1))
    }

    /// Hash of one full block given its parent's hash (`None` for the first block).
    pub(crate) fn hash_block(
        &self,
        parent: Option<BlockHash>,
        tokens: &[TokenId],
        extra: ExtraDigest,
    ) -> BlockHash {
        #[cfg(test)]
        if let Kind::Weak { mask } = self.kind {
            let sum: u128 = tokens.iter().map(|&t| u128::from(t)).sum();
            let p = parent.map_or(0, |p| p.0);
            return BlockHash((p.wrapping_mul(3) ^ sum ^ extra.0) & mask);
        }
        let mut h = self.start(b'b');
        match parent {
            None => h.write_u8(0),
            Some(p) => {
                h.write_u8(1);
                h.write_u128(p.0);
            }
        }
        h.write_u128(extra.0);
        for &t in tokens {
            h.write(&t.to_le_bytes());
        }
        BlockHash(finish(h, self))
    }

    fn start(&self, domain: u8) -> SipHasher13 {
        let mut h = match self.kind {
            Kind::Sip { k0, k1 } => SipHasher13::new_with_keys(k0, k1),
            #[cfg(test)]
            Kind::Weak { .. } => SipHasher13::new_with_keys(0, 0),
        };
        h.write_u8(domain);
        h
    }
}

fn finish(h: SipHasher13, hasher: &BlockHasher) -> u128 {
    let v = h.finish128().as_u128();
    match hasher.kind {
        Kind::Sip { .. } => v,
        #[cfg(test)]
        Kind::Weak { mask } => v & mask,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_depends_on_parent_tokens_extra_and_key() {
        let h = BlockHasher::with_key(1, 2);
        let none = ExtraDigest(0);
        let a = h.hash_block(None, &[1, 2, 3, 4], none);
        assert_eq!(a, h.hash_block(None, &[1, 2, 3, 4], none));
        assert_ne!(a, h.hash_block(None, &[1, 2, 3, 5], none));
        assert_ne!(a, h.hash_block(Some(a), &[1, 2, 3, 4], none));
        let salted = h.extra_digest(&ExtraKeys {
            cache_salt: Some("tenant".into()),
            adapter_id: None,
        });
        assert_ne!(salted, none);
        assert_ne!(a, h.hash_block(None, &[1, 2, 3, 4], salted));
        let other_key = BlockHasher::with_key(1, 3);
        assert_ne!(a, other_key.hash_block(None, &[1, 2, 3, 4], none));
    }

    #[test]
    fn random_keys_differ() {
        let (Ok(a), Ok(b)) = (BlockHasher::random(), BlockHasher::random()) else {
            panic!("no OS randomness");
        };
        let none = ExtraDigest(0);
        assert_ne!(
            a.hash_block(None, &[7], none),
            b.hash_block(None, &[7], none)
        );
    }
}
