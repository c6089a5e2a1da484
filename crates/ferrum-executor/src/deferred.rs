//! Deferred steps (async scheduling): a step whose sampled tokens stay on the device until
//! [`Executor::collect`] reads them.
//!
//! Invariants (see also executor.rs):
//! - a deferred step appends a placeholder (token 0) to each request it samples and records
//!   where; `collect` writes the token there if the request still holds it;
//! - a row that must be sampled on the host (log-probabilities) makes the whole step run to
//!   the end instead, decided before any row draws from its generator.

use ferrum_backend::Backend;
use ferrum_scheduler::{ModelRunnerOutput, RequestId};

use crate::error::{ExecutorError, Result};
use crate::executor::{DeviceRows, Executor, Planned};
use crate::input_batch::Placeholder;

/// A step on the device whose sampled tokens the host has not read yet.
pub struct PendingStep {
    ticket: u64,
    /// Every planned request in order; for each that samples, its sampling row and where its
    /// placeholder sits in its tokens.
    planned: Vec<(RequestId, Option<(usize, usize)>)>,
}

impl PendingStep {
    /// The requests that sample in this step, in order.
    pub fn sampled_req_ids(&self) -> impl Iterator<Item = &RequestId> {
        self.planned
            .iter()
            .filter(|(_, s)| s.is_some())
            .map(|(id, _)| id)
    }
}

/// What [`Executor::submit`] gives back.
pub enum Submitted {
    /// The step ran and its tokens are known.
    Done(ModelRunnerOutput),
    /// The step is queued on the device; [`Executor::collect`] gives its output.
    Pending(PendingStep),
}

impl<B: Backend> Executor<B> {
    /// Queues the device sampling of a planned step and appends a placeholder for each
    /// request that samples. None (nothing queued) when a row must be sampled on the host.
    pub(crate) fn sample_deferred(&mut self, plan: &[Planned]) -> Result<Option<PendingStep>> {
        // Checked before any row draws from its generator, so that the host path that takes
        // over draws exactly as it would have.
        let host_row = plan.iter().filter(|p| p.samples).any(|p| {
            self.batch
                .requests
                .get(&p.id)
                .is_some_and(|st| st.sampling.logprobs.is_some())
        });
        if host_row {
            return Ok(None);
        }
        // No row is sampled on the host (checked above), so every row has its adjustments.
        let DeviceRows { modes, adjust, .. } = self.device_rows(plan)?;
        let ticket = self.runner.sample_deferred(&modes, &adjust)?;
        self.last_ticket = ticket;
        let mut planned = Vec::with_capacity(plan.len());
        let mut row = 0;
        for p in plan {
            let st = self.batch.state_mut(&p.id)?;
            st.num_computed_tokens = p.start + p.len;
            let sample = if p.samples {
                let index = st.token_ids.len();
                st.token_ids.push(0);
                st.placeholder = Some(Placeholder { index, row, ticket });
                row += 1;
                Some((row - 1, index))
            } else {
                None
            };
            planned.push((p.id.clone(), sample));
        }
        Ok(Some(PendingStep { ticket, planned }))
    }

    /// Waits for a deferred step's tokens and writes them in for its placeholders.
    pub fn collect(&mut self, pending: PendingStep) -> Result<ModelRunnerOutput> {
        let mut tokens = std::mem::take(&mut self.sampled_buf);
        self.runner.wait_sampled(pending.ticket, &mut tokens)?;
        let mut out = ModelRunnerOutput::default();
        for (id, sample) in pending.planned {
            let sampled = match sample {
                Some((row, index)) => {
                    let token = tokens
                        .get(row)
                        .copied()
                        .filter(|&t| (t as usize) < self.vocab_size)
                        .ok_or_else(|| {
                            ExecutorError::InvalidStep(format!(
                                "the device sampled no valid token for row {row}"
                            ))
                        })?;
                    // A request that finished, or came back from preemption with its tokens
                    // from the scheduler, no longer holds this placeholder.
                    if let Some(st) = self.batch.requests.get_mut(&id) {
                        if let Some(t) = st.token_ids.get_mut(index) {
                            *t = token;
                        }
                        if st.placeholder.is_some_and(|p| p.index == index) {
                            st.placeholder = None;
                        }
                    }
                    vec![token]
                }
                None => Vec::new(),
            };
            out.req_ids.push(id);
            out.sampled_token_ids.push(sampled);
        }
        self.sampled_buf = tokens;
        Ok(out)
    }
}
