//! How many KV blocks the CPU engine gets.
//!
//! The CPU cache stores f32 keys and values. Its size is `--kv-cache-memory-bytes`, or
//! [`DEFAULT_CPU_KV_CACHE_BYTES`] when unset; start-up fails when one request of
//! `max_model_len` tokens cannot fit, with the numbers and the flags to change.

use crate::EngineError;

/// 2 GiB: room for tens of concurrent long requests on small models, a few on 7B-class ones.
pub const DEFAULT_CPU_KV_CACHE_BYTES: u64 = 2 << 30;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KvPlan {
    /// Usable blocks plus the reserved null block.
    pub num_blocks: usize,
    pub bytes: u64,
    pub max_concurrency: f64,
}

pub fn plan_cpu_kv_cache(
    kv_bytes_per_token: usize,
    block_size: usize,
    max_model_len: usize,
    budget: Option<u64>,
) -> Result<KvPlan, EngineError> {
    let budget = budget.unwrap_or(DEFAULT_CPU_KV_CACHE_BYTES);
    let per_block = (kv_bytes_per_token * block_size) as u64;
    if per_block == 0 {
        return Err(EngineError::Startup("KV bytes per block is zero".into()));
    }
    let usable = (budget / per_block) as usize;
    let needed = max_model_len.div_ceil(block_size);
    if usable < needed {
        return Err(EngineError::Startup(format!(
            "the KV cache of {budget} bytes holds {usable} blocks of {block_size} tokens \
             ({} tokens), but one request of --max-model-len {max_model_len} needs {needed} \
             blocks ({} bytes): raise --kv-cache-memory-bytes to at least {} or lower \
             --max-model-len",
            usable * block_size,
            needed as u64 * per_block,
            needed as u64 * per_block,
        )));
    }
    Ok(KvPlan {
        num_blocks: usable + 1,
        bytes: usable as u64 * per_block,
        max_concurrency: (usable * block_size) as f64 / max_model_len as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_blocks_and_refuses_what_cannot_fit() {
        let p = plan_cpu_kv_cache(1000, 16, 64, Some(64_000)).unwrap();
        assert_eq!(p.num_blocks, 5);
        assert!((p.max_concurrency - 1.0).abs() < 1e-9);
        let e = plan_cpu_kv_cache(1000, 16, 65, Some(64_000)).unwrap_err();
        assert!(e.to_string().contains("--kv-cache-memory-bytes"), "{e}");
    }
}
