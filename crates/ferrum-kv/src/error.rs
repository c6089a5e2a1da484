//! The one error type of this crate. Running out of blocks is not an error: allocation returns
//! `None` and the scheduler preempts someone (ARCHITECTURE.md §1.7).

/// Failures to build a KV-cache manager.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KvCacheError {
    #[error("block_size must be at least 1 token (--block-size)")]
    ZeroBlockSize,
    #[error(
        "the KV cache has {num_blocks} blocks; it needs at least 2 (block 0 is the reserved null \
         block): give the KV cache more memory or lower --block-size"
    )]
    TooFewBlocks { num_blocks: usize },
    #[error("the KV cache can hold at most {max} blocks, {num_blocks} were asked for")]
    TooManyBlocks { num_blocks: usize, max: usize },
    #[error("could not draw a random prefix-cache hash key from the operating system: {0}")]
    Entropy(String),
}
