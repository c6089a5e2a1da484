//! Scheduler tests: exact plans step by step, and whole workloads run against a fake executor
//! that rebuilds block tables from the diffs alone.

mod executor;
mod flow;
mod preemption;
mod props;
mod provisional;

use ferrum_types::{SamplingParams, TokenId};

use crate::{Request, Scheduler, SchedulerConfig, SchedulingPolicy};

pub(crate) const EOS: TokenId = 2;

/// 4-token blocks, a 16-token budget, 8 sequences, 100 usable blocks.
pub(crate) fn config() -> SchedulerConfig {
    SchedulerConfig {
        max_num_seqs: 8,
        max_num_batched_tokens: 16,
        max_model_len: 128,
        block_size: 4,
        num_gpu_blocks: 101,
        enable_prefix_caching: true,
        enable_chunked_prefill: true,
        policy: SchedulingPolicy::Fcfs,
        long_prefill_token_threshold: None,
    }
}

pub(crate) fn scheduler(config: SchedulerConfig) -> Scheduler {
    Scheduler::new(config).expect("valid config")
}

/// `id → tokens` of one step, sorted for comparison.
pub(crate) fn plan(out: &crate::SchedulerOutput) -> Vec<(String, usize)> {
    let mut v: Vec<_> = out
        .num_scheduled_tokens
        .iter()
        .map(|(id, &n)| (id.to_string(), n))
        .collect();
    v.sort();
    v
}

/// A prompt of `len` tokens starting at `first` (distinct `first`s give distinct prompts).
pub(crate) fn prompt(first: TokenId, len: usize) -> Vec<TokenId> {
    (first..first + len as TokenId).collect()
}

/// Greedy request that ignores EOS and generates exactly `max_tokens` tokens.
pub(crate) fn request(id: &str, prompt: Vec<TokenId>, max_tokens: usize) -> Request {
    let params = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(max_tokens)
    };
    Request::new(id, prompt, params).with_eos_token_ids(vec![EOS])
}
