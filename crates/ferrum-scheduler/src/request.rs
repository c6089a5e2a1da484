//! A request as the scheduler tracks it, and its state machine.
//!
//! ```text
//!   WAITING ──admit──▶ RUNNING ──stop/length──▶ FINISHED_{STOPPED,LENGTH}
//!      ▲                  │
//!      └──── PREEMPTED ◀──┘ (blocks freed, num_computed_tokens = 0; readmitted by its key)
//!   any unfinished state ──abort──▶ FINISHED_ABORTED
//! ```
//!
//! Invariants: `num_computed_tokens <= num_tokens()`; tokens are only appended (prompt, then
//! output), so block hashes stay valid across preemption; a finished request never runs again.

use std::sync::Arc;

use ferrum_kv::ExtraKeys;
use ferrum_types::{FinishReason, SamplingParams, TokenId};

use crate::queue::SchedKey;

/// Request ids are shared cheaply between the scheduler, its outputs and the engine.
pub type RequestId = Arc<str>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    Waiting,
    Running,
    /// Back in the waiting queue after losing its blocks; resumes by recomputing.
    Preempted,
    FinishedStopped,
    FinishedLength,
    FinishedAborted,
}

impl RequestStatus {
    pub fn is_finished(self) -> bool {
        self.finish_reason().is_some()
    }

    pub fn finish_reason(self) -> Option<FinishReason> {
        match self {
            Self::FinishedStopped => Some(FinishReason::Stop),
            Self::FinishedLength => Some(FinishReason::Length),
            Self::FinishedAborted => Some(FinishReason::Abort),
            Self::Waiting | Self::Running | Self::Preempted => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub request_id: RequestId,
    pub sampling_params: SamplingParams,
    /// The model's end-of-sequence tokens (several with some generation configs).
    pub eos_token_ids: Vec<TokenId>,
    /// Seconds since some epoch chosen by the caller, for metrics; ordering uses the order in
    /// which requests were added.
    pub arrival_time: f64,
    /// Lower runs first under the priority policy.
    pub priority: i32,
    /// Cache salt / adapter id: anything besides token ids that changes the KV.
    pub extra_keys: ExtraKeys,
    /// Prompt followed by output tokens.
    token_ids: Vec<TokenId>,
    prompt_len: usize,
    status: RequestStatus,
    num_computed_tokens: usize,
    num_cached_tokens: Option<usize>,
    num_preemptions: u32,
    stop_reason: Option<TokenId>,
    /// Place in the queues, fixed by `Scheduler::add_request`.
    pub(crate) key: SchedKey,
}

impl Request {
    pub fn new(
        request_id: impl Into<RequestId>,
        prompt_token_ids: Vec<TokenId>,
        sampling_params: SamplingParams,
    ) -> Self {
        Self {
            request_id: request_id.into(),
            sampling_params,
            eos_token_ids: Vec::new(),
            arrival_time: 0.0,
            priority: 0,
            extra_keys: ExtraKeys::default(),
            prompt_len: prompt_token_ids.len(),
            token_ids: prompt_token_ids,
            status: RequestStatus::Waiting,
            num_computed_tokens: 0,
            num_cached_tokens: None,
            num_preemptions: 0,
            stop_reason: None,
            key: SchedKey::default(),
        }
    }

    pub fn with_eos_token_ids(mut self, eos_token_ids: Vec<TokenId>) -> Self {
        self.eos_token_ids = eos_token_ids;
        self
    }

    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    pub fn with_arrival_time(mut self, arrival_time: f64) -> Self {
        self.arrival_time = arrival_time;
        self
    }

    pub fn with_extra_keys(mut self, extra_keys: ExtraKeys) -> Self {
        self.extra_keys = extra_keys;
        self
    }

    pub fn prompt_token_ids(&self) -> &[TokenId] {
        &self.token_ids[..self.prompt_len]
    }

    pub fn output_token_ids(&self) -> &[TokenId] {
        &self.token_ids[self.prompt_len..]
    }

    /// Prompt then output.
    pub fn all_token_ids(&self) -> &[TokenId] {
        &self.token_ids
    }

    /// Prompt + output tokens.
    pub fn num_tokens(&self) -> usize {
        self.token_ids.len()
    }

    pub fn num_prompt_tokens(&self) -> usize {
        self.prompt_len
    }

    pub fn num_output_tokens(&self) -> usize {
        self.token_ids.len() - self.prompt_len
    }

    pub fn status(&self) -> RequestStatus {
        self.status
    }

    /// Tokens whose KV is in the cache (computed by a step or found by a prefix hit).
    pub fn num_computed_tokens(&self) -> usize {
        self.num_computed_tokens
    }

    /// Prompt tokens found in the prefix cache at first admission (`None` before that).
    pub fn num_cached_tokens(&self) -> Option<usize> {
        self.num_cached_tokens
    }

    pub fn num_preemptions(&self) -> u32 {
        self.num_preemptions
    }

    /// The stop token id that finished the request, if one did.
    pub fn stop_reason(&self) -> Option<TokenId> {
        self.stop_reason
    }

    /// A request entering the scheduler starts clean, whatever the caller set.
    pub(crate) fn reset_for_admission(&mut self) {
        self.token_ids.truncate(self.prompt_len);
        self.status = RequestStatus::Waiting;
        self.num_computed_tokens = 0;
        self.num_cached_tokens = None;
        self.num_preemptions = 0;
        self.stop_reason = None;
    }

    /// WAITING | PREEMPTED → RUNNING, with `num_computed` tokens found in the prefix cache.
    pub(crate) fn start_running(&mut self, num_computed: usize) {
        debug_assert!(matches!(
            self.status,
            RequestStatus::Waiting | RequestStatus::Preempted
        ));
        self.status = RequestStatus::Running;
        self.num_computed_tokens = num_computed;
        self.num_cached_tokens.get_or_insert(num_computed);
    }

    /// RUNNING → PREEMPTED: the KV is gone and will be recomputed.
    pub(crate) fn preempt(&mut self) {
        debug_assert_eq!(self.status, RequestStatus::Running);
        self.status = RequestStatus::Preempted;
        self.num_computed_tokens = 0;
        self.num_preemptions += 1;
    }

    pub(crate) fn advance_computed(&mut self, num_tokens: usize) {
        self.num_computed_tokens = (self.num_computed_tokens + num_tokens).min(self.num_tokens());
    }

    pub(crate) fn append_output_token(&mut self, token: TokenId) {
        self.token_ids.push(token);
    }

    /// Whether the last token is a placeholder of async scheduling (its value still on the
    /// device).
    pub fn has_placeholder(&self) -> bool {
        self.num_output_tokens() > 0
            && self.token_ids.last() == Some(&crate::provisional::PLACEHOLDER_TOKEN)
    }

    /// Removes the trailing placeholder; false when there is none.
    pub(crate) fn take_placeholder(&mut self) -> bool {
        if self.has_placeholder() {
            self.token_ids.pop();
            true
        } else {
            false
        }
    }

    /// Whether the request has every token its length limits allow (`max_model_len` or
    /// `max_tokens` reached): the length stop of `check_stop`, which async scheduling also
    /// applies before the last token's value is known.
    pub(crate) fn at_length_limit(&self, max_model_len: usize) -> bool {
        self.num_tokens() >= max_model_len
            || self.num_output_tokens() >= self.sampling_params.max_tokens
    }

    pub(crate) fn finish(&mut self, status: RequestStatus, stop_reason: Option<TokenId>) {
        debug_assert!(status.is_finished() && !self.status.is_finished());
        self.status = status;
        self.stop_reason = stop_reason;
    }
}
