//! Engine limits and the facts about the started engine that the server logs and reports.

pub use ferrum_scheduler::SchedulingPolicy;

/// `--device`: where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA when a driver and a GPU are present (and the model is dense), else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

/// Limits of one engine (vLLM's flag names in the comments).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// `--max-num-seqs`
    pub max_num_seqs: usize,
    /// `--max-num-batched-tokens`
    pub max_num_batched_tokens: usize,
    /// `--max-model-len`; 0 means the model's context length.
    pub max_model_len: usize,
    /// `--block-size`
    pub block_size: usize,
    /// `--enable-prefix-caching` / `--no-enable-prefix-caching`
    pub enable_prefix_caching: bool,
    pub enable_chunked_prefill: bool,
    /// `--scheduling-policy`
    pub scheduling_policy: SchedulingPolicy,
    /// `--kv-cache-memory-bytes`; `None` uses the CPU default.
    pub kv_cache_memory_bytes: Option<u64>,
    /// CPU threads; 0 uses every core.
    pub threads: usize,
    /// `--device`
    pub device: Device,
    /// `--gpu-memory-utilization`: the fraction of the card's total memory this engine may use
    /// for weights, activations and KV cache (ignored on the CPU).
    pub gpu_memory_utilization: f32,
    /// `--seed`: makes requests without their own seed reproducible.
    pub seed: Option<u64>,
    /// `--enforce-eager`: no device graphs for decode steps.
    pub enforce_eager: bool,
    /// `--async-scheduling` / `--no-async-scheduling`: plan and launch step N+1 while the
    /// device runs step N, where the backend keeps sampled tokens on the device. `None` (the
    /// default, as in vLLM) turns it on wherever it can run; the CPU runs steps one at a time.
    pub async_scheduling: Option<bool>,
    /// `--dtype` (vLLM's names: auto, bfloat16, float16/half, float32/float): the GPU's
    /// compute type. The CPU computes in f32 whatever it says.
    pub dtype: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_num_seqs: 256,
            max_num_batched_tokens: 2048,
            max_model_len: 0,
            block_size: 16,
            enable_prefix_caching: true,
            enable_chunked_prefill: true,
            scheduling_policy: SchedulingPolicy::Fcfs,
            kv_cache_memory_bytes: None,
            threads: 0,
            device: Device::Auto,
            gpu_memory_utilization: 0.9,
            seed: None,
            enforce_eager: false,
            async_scheduling: None,
            dtype: "auto".into(),
        }
    }
}

/// What the started engine looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineInfo {
    pub device: String,
    pub max_model_len: usize,
    pub num_blocks: usize,
    pub block_size: usize,
    pub kv_cache_bytes: u64,
    /// Requests of `max_model_len` tokens that fit in the KV cache at once.
    pub max_concurrency: f64,
    pub vocab_size: usize,
}
