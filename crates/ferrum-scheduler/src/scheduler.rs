//! `Scheduler`: owns every request and the KV-cache manager of one engine.
//!
//! The step is `schedule()` (schedule.rs) → the executor runs the plan →
//! `update_from_output()` (update.rs). Between steps the engine adds and aborts requests.
//!
//! Invariants:
//! - every unfinished request is in exactly one of `waiting` (WAITING or PREEMPTED, no blocks)
//!   and `running` (RUNNING, holds blocks); finished requests are forgotten at once;
//! - a request that could never fit (prompt too long, or its prompt + max_tokens larger than the
//!   whole KV cache) is refused by `add_request`, so every admitted request can complete alone.

use ferrum_kv::{KvCacheConfig, KvCacheManager};

use crate::queue::{Entry, RunningQueue, SchedKey, WaitingQueue};
use crate::{
    Request, RequestId, RequestMap, RequestStatus, SchedulerConfig, SchedulerError,
    SchedulingPolicy,
};

/// Counters and gauges for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SchedulerStats {
    pub num_running: usize,
    pub num_waiting: usize,
    /// Fraction of KV blocks held by requests.
    pub kv_cache_usage: f64,
    pub num_preemptions_total: u64,
    /// Prompt tokens looked up in the prefix cache, and found there (cumulative).
    pub prefix_cache_queries: u64,
    pub prefix_cache_hits: u64,
}

#[derive(Debug)]
pub struct Scheduler {
    pub(crate) config: SchedulerConfig,
    pub(crate) kv: KvCacheManager,
    pub(crate) requests: RequestMap<Request>,
    pub(crate) waiting: WaitingQueue,
    pub(crate) running: RunningQueue,
    /// Finished or aborted since the last `schedule()`.
    pub(crate) finished_req_ids: Vec<RequestId>,
    next_seq: u64,
    pub(crate) num_preemptions_total: u64,
    /// Async scheduling: requests finished at a length limit whose last token is still on the
    /// device, with their cached prompt tokens (reported when it resolves).
    pub(crate) finished_unreported: RequestMap<usize>,
}

impl Scheduler {
    pub fn new(config: SchedulerConfig) -> Result<Self, SchedulerError> {
        config.validate()?;
        let kv = KvCacheManager::new(KvCacheConfig {
            block_size: config.block_size,
            num_blocks: config.num_gpu_blocks,
            enable_prefix_caching: config.enable_prefix_caching,
        })?;
        Ok(Self {
            config,
            kv,
            requests: RequestMap::default(),
            waiting: WaitingQueue::default(),
            running: RunningQueue::default(),
            finished_req_ids: Vec::new(),
            next_seq: 0,
            num_preemptions_total: 0,
            finished_unreported: RequestMap::default(),
        })
    }

    /// Queues a request, or refuses one that could never complete.
    pub fn add_request(&mut self, mut request: Request) -> Result<(), SchedulerError> {
        self.check_admissible(&request)?;
        request.reset_for_admission();
        let priority = match self.config.policy {
            SchedulingPolicy::Fcfs => 0,
            SchedulingPolicy::Priority => i64::from(request.priority),
        };
        let key = SchedKey {
            priority,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        let id = request.request_id.clone();
        request.key = key;
        self.waiting.insert(Entry {
            key,
            id: id.clone(),
        });
        self.requests.insert(id, request);
        Ok(())
    }

    fn check_admissible(&self, req: &Request) -> Result<(), SchedulerError> {
        let id = || req.request_id.to_string();
        if self.requests.contains_key(&req.request_id) {
            return Err(SchedulerError::DuplicateRequestId(id()));
        }
        let prompt_len = req.num_prompt_tokens();
        if prompt_len == 0 {
            return Err(SchedulerError::EmptyPrompt(id()));
        }
        if req.sampling_params.max_tokens == 0 {
            return Err(SchedulerError::ZeroMaxTokens(id()));
        }
        let max_model_len = self.config.max_model_len;
        if prompt_len >= max_model_len {
            return Err(SchedulerError::PromptTooLong {
                request_id: id(),
                prompt_len,
                max_model_len,
            });
        }
        // The last sampled token never needs KV: the request finishes when it is sampled.
        let most = prompt_len.saturating_add(req.sampling_params.max_tokens);
        let num_tokens = most.min(max_model_len) - 1;
        let needed_blocks = self.kv.num_blocks_for(num_tokens);
        let available_blocks = self.kv.num_usable_blocks();
        if needed_blocks > available_blocks {
            return Err(SchedulerError::ExceedsKvCapacity {
                request_id: id(),
                num_tokens,
                needed_blocks,
                available_blocks,
            });
        }
        Ok(())
    }

    /// Aborts requests wherever they are, returning their blocks. Unknown ids are ignored.
    /// Returns how many were found.
    pub fn abort_requests<I, S>(&mut self, ids: I) -> usize
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut found = 0;
        for id in ids {
            if let Some(req) = self.requests.get(id.as_ref()) {
                let id = req.request_id.clone();
                self.finish_request(&id, RequestStatus::FinishedAborted, None);
                found += 1;
            }
        }
        found
    }

    /// Moves a request out of its queue, frees its blocks and forgets it.
    pub(crate) fn finish_request(
        &mut self,
        id: &RequestId,
        status: RequestStatus,
        stop_reason: Option<ferrum_types::TokenId>,
    ) {
        let Some(mut req) = self.requests.remove(id) else {
            return;
        };
        match req.status() {
            RequestStatus::Running => self.running.remove(req.key),
            _ => self.waiting.remove(req.key),
        };
        self.kv.free(id);
        req.finish(status, stop_reason);
        self.finished_req_ids.push(req.request_id);
    }

    pub fn stats(&self) -> SchedulerStats {
        let prefix = self.kv.prefix_cache_stats();
        SchedulerStats {
            num_running: self.running.len(),
            num_waiting: self.waiting.len(),
            kv_cache_usage: self.kv.usage(),
            num_preemptions_total: self.num_preemptions_total,
            prefix_cache_queries: prefix.queries,
            prefix_cache_hits: prefix.hits,
        }
    }

    pub fn request(&self, id: &str) -> Option<&Request> {
        self.requests.get(id)
    }

    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn has_unfinished_requests(&self) -> bool {
        !self.requests.is_empty()
    }

    /// Running request ids, best scheduling key first.
    pub fn running_ids(&self) -> impl Iterator<Item = &RequestId> {
        self.running.ids()
    }

    /// Waiting request ids in admission order.
    pub fn waiting_ids(&self) -> impl Iterator<Item = &RequestId> {
        self.waiting.ids()
    }

    pub fn kv_cache(&self) -> &KvCacheManager {
        &self.kv
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Drops the prefix cache (e.g. after new weights); refused while requests hold blocks.
    pub fn reset_prefix_cache(&mut self) -> bool {
        self.kv.reset_prefix_cache()
    }
}
