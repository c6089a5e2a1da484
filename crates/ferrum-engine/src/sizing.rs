//! How many KV blocks the engine gets.
//!
//! CPU: the cache stores f32 keys and values. Its size is `--kv-cache-memory-bytes`, or
//! [`DEFAULT_CPU_KV_CACHE_BYTES`] when unset.
//!
//! GPU: the cache stores bf16. The process may use `--gpu-memory-utilization` × the card's total
//! memory for everything; the KV cache gets what is left after the memory in use once the
//! weights are loaded (measured), the step workspace (computed from the model's shapes at
//! `--max-num-batched-tokens` and `--max-num-seqs`) and [`GPU_RESERVE_BYTES`].
//! `--kv-cache-memory-bytes` replaces that computation, as in vLLM.
//!
//! Either way start-up fails when one request of `max_model_len` tokens cannot fit, with the
//! numbers and the flags to change.

use ferrum_model::ModelConfig;

use crate::EngineError;

/// Headroom beyond weights, workspace and KV: cuBLAS workspaces, the kernel module, the
/// allocator's rounding.
pub const GPU_RESERVE_BYTES: u64 = 512 << 20;

/// Device memory as measured around the weight load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuMemory {
    pub total: u64,
    /// In use on the device (by every process) once the weights are loaded.
    pub used: u64,
    /// Taken by the weight load itself.
    pub weights: u64,
}

/// Bytes of the step workspace `DecoderModel::workspace` allocates (mirrors its fields):
/// residual, normed and proj of `hidden`; q and attn of `heads × head_dim`; k and v of
/// `kv_heads × head_dim`; gate, up and act of `intermediate` — each `max_tokens` rows — plus
/// `max_logits` rows of `hidden` and of `vocab`.
pub fn workspace_bytes(c: &ModelConfig, max_tokens: usize, max_logits: usize, elem: usize) -> u64 {
    let q = c.num_heads * c.head_dim;
    let kv = c.num_kv_heads * c.head_dim;
    let per_token = 3 * c.hidden_size + 2 * q + 2 * kv + 3 * c.intermediate_size;
    let per_logit = c.hidden_size + c.vocab_size;
    ((max_tokens * per_token + max_logits * per_logit) * elem) as u64
}

fn gib(b: u64) -> String {
    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
}

/// Plans the GPU KV cache; `explicit` is `--kv-cache-memory-bytes`.
pub fn plan_gpu_kv_cache(
    kv_bytes_per_token: usize,
    block_size: usize,
    max_model_len: usize,
    utilization: f32,
    mem: GpuMemory,
    workspace: u64,
    explicit: Option<u64>,
) -> Result<KvPlan, EngineError> {
    let per_block = (kv_bytes_per_token * block_size) as u64;
    if per_block == 0 {
        return Err(EngineError::Startup("KV bytes per block is zero".into()));
    }
    if !(utilization > 0.0 && utilization <= 1.0) {
        return Err(EngineError::Startup(format!(
            "--gpu-memory-utilization {utilization} must be in (0, 1]"
        )));
    }
    let needed = max_model_len.div_ceil(block_size);
    let fixed = mem.used + workspace + GPU_RESERVE_BYTES;
    let budget = (f64::from(utilization) * mem.total as f64) as u64;
    let kv_bytes = match explicit {
        Some(b) => {
            if fixed + b > mem.total {
                return Err(EngineError::Startup(format!(
                    "--kv-cache-memory-bytes {b} ({}) does not fit: {} of the card's {} are in use \
                     after loading the weights ({}), the step workspace needs {} and {} stay in \
                     reserve: lower --kv-cache-memory-bytes",
                    gib(b),
                    gib(mem.used),
                    gib(mem.total),
                    gib(mem.weights),
                    gib(workspace),
                    gib(GPU_RESERVE_BYTES)
                )));
            }
            b
        }
        None => {
            if fixed >= budget {
                return Err(EngineError::Startup(format!(
                    "no room for a KV cache: --gpu-memory-utilization {utilization} allows {} of \
                     the card's {}, but {} are in use after loading the weights ({}), the step \
                     workspace needs {} and {} stay in reserve: raise --gpu-memory-utilization, \
                     lower --max-num-batched-tokens or --max-num-seqs, or use a smaller model",
                    gib(budget),
                    gib(mem.total),
                    gib(mem.used),
                    gib(mem.weights),
                    gib(workspace),
                    gib(GPU_RESERVE_BYTES)
                )));
            }
            budget - fixed
        }
    };
    let usable = (kv_bytes / per_block) as usize;
    if usable < needed {
        let need_bytes = needed as u64 * per_block;
        // Rounded up to the hundredth so that the suggested value is enough.
        let at_least = ((fixed + need_bytes) as f64 / mem.total as f64 * 100.0).ceil() / 100.0;
        return Err(EngineError::Startup(format!(
            "the KV cache gets {} = {usable} blocks of {block_size} tokens ({} tokens), but one \
             request of --max-model-len {max_model_len} needs {needed} blocks ({}): raise \
             --gpu-memory-utilization to at least {:.2}{} or lower --max-model-len to at most {}",
            gib(kv_bytes),
            usable * block_size,
            gib(need_bytes),
            at_least.min(1.0),
            if explicit.is_some() {
                " (and drop --kv-cache-memory-bytes)"
            } else {
                ""
            },
            usable * block_size
        )));
    }
    Ok(KvPlan {
        num_blocks: usable + 1,
        bytes: usable as u64 * per_block,
        max_concurrency: (usable * block_size) as f64 / max_model_len as f64,
    })
}

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

    const GIB: u64 = 1 << 30;

    fn mem(used: u64) -> GpuMemory {
        GpuMemory {
            total: 80 * GIB,
            used,
            weights: used - GIB,
        }
    }

    #[test]
    fn gpu_plan_takes_what_utilization_leaves() {
        // 0.5 × 80 GiB = 40; 17 GiB used, 2.5 GiB workspace, 0.5 GiB reserve: 20 GiB of KV.
        let per_token = 128 * 1024; // 128 KiB per token: 2 MiB blocks of 16
        let p =
            plan_gpu_kv_cache(per_token, 16, 8192, 0.5, mem(17 * GIB), 5 * GIB / 2, None).unwrap();
        assert_eq!(p.num_blocks, 20 * 512 + 1);
        assert_eq!(p.bytes, 20 * GIB);
        assert!((p.max_concurrency - 20.0).abs() < 1e-9);
        // An explicit size wins over the fraction.
        let p = plan_gpu_kv_cache(per_token, 16, 8192, 0.5, mem(17 * GIB), 0, Some(GIB)).unwrap();
        assert_eq!(p.num_blocks, 513);
    }

    #[test]
    fn gpu_plan_refuses_with_numbers_and_flags() {
        let per_token = 128 * 1024;
        // Weights alone exceed the budget.
        let e = plan_gpu_kv_cache(per_token, 16, 8192, 0.2, mem(17 * GIB), 0, None).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("--gpu-memory-utilization 0.2") && m.contains("16.00 GiB"),
            "{m}"
        );
        // The KV left cannot hold one request of max_model_len: 1 GiB holds 8192 tokens.
        let e = plan_gpu_kv_cache(per_token, 16, 8193, 0.25, mem(18 * GIB + GIB / 2), 0, None)
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("--max-model-len 8193") && m.contains("at most 8192"),
            "{m}"
        );
        assert!(
            m.contains("raise --gpu-memory-utilization to at least 0.26"),
            "{m}"
        );
        // An explicit size larger than the card.
        let e = plan_gpu_kv_cache(per_token, 16, 64, 0.9, mem(17 * GIB), 0, Some(70 * GIB))
            .unwrap_err();
        assert!(
            e.to_string().contains("lower --kv-cache-memory-bytes"),
            "{e}"
        );
    }

    #[test]
    fn workspace_counts_every_buffer() {
        let c = ferrum_model::ModelConfig {
            hidden_size: 8,
            num_heads: 2,
            num_kv_heads: 1,
            head_dim: 4,
            intermediate_size: 16,
            vocab_size: 100,
            ..tiny_config()
        };
        // per token 3·8 + 2·8 + 2·4 + 3·16 = 96; per logit 108.
        assert_eq!(
            workspace_bytes(&c, 10, 2, 2),
            ((10 * 96 + 2 * 108) * 2) as u64
        );
    }

    fn tiny_config() -> ferrum_model::ModelConfig {
        let hf = ferrum_model::HfConfig {
            architectures: vec!["LlamaForCausalLM".into()],
            model_type: Some("llama".into()),
            vocab_size: Some(100),
            hidden_size: Some(8),
            intermediate_size: Some(16),
            num_hidden_layers: Some(1),
            num_attention_heads: Some(2),
            num_key_value_heads: Some(1),
            rms_norm_eps: Some(1e-5),
            max_position_embeddings: Some(64),
            ..Default::default()
        };
        ferrum_model::config_from_hf(&hf).unwrap()
    }
}
