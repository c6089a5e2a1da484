//! Scheduler limits and features, with `validate()` messages that say which flag to change.

use std::str::FromStr;

use crate::SchedulerError;

/// Order in which waiting requests are admitted and running ones are preempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchedulingPolicy {
    /// First come, first served (arrival order).
    #[default]
    Fcfs,
    /// Lower `priority` value first, then arrival order.
    Priority,
}

impl FromStr for SchedulingPolicy {
    type Err = SchedulerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fcfs" => Ok(Self::Fcfs),
            "priority" => Ok(Self::Priority),
            other => Err(SchedulerError::InvalidConfig(format!(
                "--scheduling-policy must be 'fcfs' or 'priority', got {other:?}"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Most requests running at once (`--max-num-seqs`).
    pub max_num_seqs: usize,
    /// Token budget of one step, prefill and decode together (`--max-num-batched-tokens`).
    pub max_num_batched_tokens: usize,
    /// Most tokens (prompt + output) one request may hold (`--max-model-len`).
    pub max_model_len: usize,
    /// Tokens per KV block (`--block-size`).
    pub block_size: usize,
    /// KV blocks in the pool, including the reserved null block; set by KV-memory sizing.
    pub num_gpu_blocks: usize,
    pub enable_prefix_caching: bool,
    /// Split prompts larger than the remaining budget over several steps.
    pub enable_chunked_prefill: bool,
    pub policy: SchedulingPolicy,
    /// Cap on one request's tokens per step while it is in prefill, so that one long prompt
    /// cannot take the whole budget (needs chunked prefill).
    pub long_prefill_token_threshold: Option<usize>,
}

impl Default for SchedulerConfig {
    /// vLLM's defaults; `max_model_len` comes from the model and `num_gpu_blocks` from sizing.
    fn default() -> Self {
        Self {
            max_num_seqs: 256,
            max_num_batched_tokens: 2048,
            max_model_len: 2048,
            block_size: 16,
            num_gpu_blocks: 0,
            enable_prefix_caching: true,
            enable_chunked_prefill: true,
            policy: SchedulingPolicy::Fcfs,
            long_prefill_token_threshold: None,
        }
    }
}

impl SchedulerConfig {
    pub fn validate(&self) -> Result<(), SchedulerError> {
        let fail = |msg: String| Err(SchedulerError::InvalidConfig(msg));
        if self.max_num_seqs == 0 {
            return fail("--max-num-seqs must be at least 1".into());
        }
        if self.block_size == 0 {
            return fail("--block-size must be at least 1".into());
        }
        if self.max_model_len < 2 {
            return fail(
                "--max-model-len must be at least 2 (one prompt token, one output)".into(),
            );
        }
        if self.num_gpu_blocks < 2 {
            return fail(format!(
                "the KV cache has {} blocks, at least 2 are needed (block 0 is reserved): give \
                 the KV cache more memory",
                self.num_gpu_blocks
            ));
        }
        if self.max_num_batched_tokens < self.max_num_seqs {
            return fail(format!(
                "--max-num-batched-tokens ({}) is smaller than --max-num-seqs ({}): every running \
                 request needs at least one token per step; raise --max-num-batched-tokens or \
                 lower --max-num-seqs",
                self.max_num_batched_tokens, self.max_num_seqs
            ));
        }
        if !self.enable_chunked_prefill && self.max_num_batched_tokens < self.max_model_len {
            return fail(format!(
                "--max-num-batched-tokens ({}) is smaller than --max-model-len ({}) and chunked \
                 prefill is off, so a long prompt could never be scheduled: raise \
                 --max-num-batched-tokens, lower --max-model-len, or enable chunked prefill",
                self.max_num_batched_tokens, self.max_model_len
            ));
        }
        match self.long_prefill_token_threshold {
            Some(0) => fail("--long-prefill-token-threshold must be at least 1".into()),
            Some(_) if !self.enable_chunked_prefill => fail(
                "--long-prefill-token-threshold splits prompts and needs chunked prefill: \
                 enable chunked prefill or drop the threshold"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// Whether one request of `max_model_len` tokens fits in the KV cache. The engine calls this
    /// after sizing the pool, to refuse to start rather than reject such requests one by one.
    pub fn check_kv_capacity(&self) -> Result<(), SchedulerError> {
        let usable = self.num_gpu_blocks.saturating_sub(1);
        let needed = (self.max_model_len - 1).div_ceil(self.block_size.max(1));
        if needed > usable {
            return Err(SchedulerError::InvalidConfig(format!(
                "one request of --max-model-len {} tokens needs {needed} KV blocks of {} tokens, \
                 the KV cache has {usable}: lower --max-model-len or give the KV cache more memory",
                self.max_model_len, self.block_size
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SchedulerConfig {
        SchedulerConfig {
            num_gpu_blocks: 100,
            ..SchedulerConfig::default()
        }
    }

    fn message(c: &SchedulerConfig) -> String {
        c.validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(config().validate(), Ok(()));
    }

    #[test]
    fn messages_name_the_flag_to_change() {
        let c = SchedulerConfig {
            enable_chunked_prefill: false,
            max_model_len: 4096,
            ..config()
        };
        assert!(message(&c).contains("raise --max-num-batched-tokens"));
        let c = SchedulerConfig {
            max_num_batched_tokens: 100,
            ..config()
        };
        assert!(message(&c).contains("--max-num-seqs"));
        let c = SchedulerConfig {
            long_prefill_token_threshold: Some(64),
            enable_chunked_prefill: false,
            max_num_batched_tokens: 4096,
            ..config()
        };
        assert!(message(&c).contains("needs chunked prefill"));
        let c = SchedulerConfig {
            num_gpu_blocks: 10,
            ..config()
        };
        assert_eq!(c.validate(), Ok(()));
        let err = c.check_kv_capacity().err().map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("lower --max-model-len"));
        assert!("lottery".parse::<SchedulingPolicy>().is_err());
        assert_eq!("priority".parse(), Ok(SchedulingPolicy::Priority));
    }
}
