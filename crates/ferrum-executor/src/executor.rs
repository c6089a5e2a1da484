//! One engine step on the device: apply the scheduler's diffs, run the forward pass over every
//! scheduled request's tokens, and sample for the requests whose scheduled tokens reach the end
//! of what they know (a prompt chunk that completes the prompt, or a decode step).
//!
//! With async scheduling a step may be submitted before the previous one's tokens are on the
//! host ([`Executor::submit`] with `defer`, then [`Executor::collect`], in deferred.rs).
//! Invariants:
//! - a deferred step appends a placeholder (token 0) for each request it samples, so that the
//!   next step can be planned on counts; the placeholder's value lives on the device until
//!   `collect` writes it in;
//! - a planned input token that is still a placeholder is always the latest deferred
//!   sampling's, and the device copies it in before the forward pass reads it.

use ferrum_backend::{Backend, LogitAdjust, RowSampling};
use ferrum_scheduler::{Logprob, ModelRunnerOutput, RequestId, SchedulerOutput, TokenLogprobs};

use crate::deferred::Submitted;
use crate::error::{ExecutorError, Result};
use crate::input_batch::InputBatch;
use crate::runner::{ModelRunner, SeqInput};
use crate::sampler::{logit_adjustments, row_sampling, sample, SampledToken, SequenceView};
use crate::Rng;

pub struct Executor<B: Backend> {
    pub(crate) runner: ModelRunner<B>,
    pub(crate) batch: InputBatch,
    pub(crate) eos_token_ids: Vec<u32>,
    pub(crate) vocab_size: usize,
    /// The host-sampled logits of the last step, kept so that a step allocates no new
    /// `[rows, vocab]` buffer (megabytes at a few dozen rows).
    logits_buf: Vec<f32>,
    /// The device-sampled tokens of the last step, kept for the same reason.
    pub(crate) sampled_buf: Vec<u32>,
    /// The latest sampling whose tokens the device holds (0: none yet).
    pub(crate) last_ticket: u64,
}

/// One scheduled request's slice of the step.
pub(crate) struct Planned {
    pub id: RequestId,
    pub start: usize,
    pub len: usize,
    pub samples: bool,
}

impl<B: Backend> Executor<B> {
    /// `seed` makes unseeded requests reproducible across runs (`--seed`).
    pub fn new(runner: ModelRunner<B>, eos_token_ids: Vec<u32>, seed: Option<u64>) -> Self {
        let vocab_size = runner.model().config().vocab_size;
        Self {
            runner,
            batch: InputBatch {
                engine_rng: seed.map(Rng::new),
                ..InputBatch::default()
            },
            eos_token_ids,
            vocab_size,
            logits_buf: Vec::new(),
            sampled_buf: Vec::new(),
            last_ticket: 0,
        }
    }

    pub fn runner(&self) -> &ModelRunner<B> {
        &self.runner
    }

    /// Whether steps can be submitted with their tokens left on the device (async scheduling).
    pub fn can_defer(&self) -> bool {
        let b = self.runner.backend();
        b.samples_on_device() && b.supports_deferred_sampling()
    }

    /// Runs one scheduled step and samples where a request completed its known tokens.
    pub fn execute(&mut self, so: &SchedulerOutput) -> Result<ModelRunnerOutput> {
        match self.submit(so, false)? {
            Submitted::Done(out) => Ok(out),
            Submitted::Pending(p) => self.collect(p),
        }
    }

    /// Queues one scheduled step. With `defer`, a step whose every row samples on the device
    /// returns before its tokens reach the host ([`Submitted::Pending`]); otherwise it runs to
    /// the end.
    pub fn submit(&mut self, so: &SchedulerOutput, defer: bool) -> Result<Submitted> {
        self.batch.update(so)?;
        let order = so
            .scheduled_new_reqs
            .iter()
            .map(|r| &r.req_id)
            .chain(&so.scheduled_cached_reqs.req_ids);
        let mut plan = Vec::new();
        // `[t, r]`: the step's input token t is row r of the latest deferred sampling.
        let mut patches: Vec<[u32; 2]> = Vec::new();
        let mut flat = 0usize;
        for id in order {
            let Some(&n) = so.num_scheduled_tokens.get(id) else {
                continue;
            };
            let st = self.batch.requests.get(id).ok_or_else(|| {
                ExecutorError::InvalidStep(format!("request {id} scheduled but unknown"))
            })?;
            let end = st.num_computed_tokens + n;
            if end > st.token_ids.len() {
                return Err(ExecutorError::InvalidStep(format!(
                    "request {id}: {n} tokens scheduled from {} but only {} known",
                    st.num_computed_tokens,
                    st.token_ids.len()
                )));
            }
            if let Some(p) = st.placeholder {
                if (st.num_computed_tokens..end).contains(&p.index) {
                    if p.ticket != self.last_ticket {
                        return Err(ExecutorError::InvalidStep(format!(
                            "request {id}: input token {} is from sampling {} but the device \
                             holds sampling {}",
                            p.index, p.ticket, self.last_ticket
                        )));
                    }
                    let t = flat + (p.index - st.num_computed_tokens);
                    patches.push([to_u32(t)?, to_u32(p.row)?]);
                }
            }
            flat += n;
            plan.push(Planned {
                id: id.clone(),
                start: st.num_computed_tokens,
                len: n,
                samples: end == st.token_ids.len(),
            });
        }
        let mut out = ModelRunnerOutput::default();
        if plan.is_empty() {
            return Ok(Submitted::Done(out));
        }
        let inputs: Vec<SeqInput<'_>> = plan
            .iter()
            .map(|p| {
                let st = &self.batch.requests[&p.id];
                SeqInput {
                    tokens: &st.token_ids[p.start..p.start + p.len],
                    num_computed_tokens: p.start,
                    block_table: &st.block_table,
                    want_logits: p.samples,
                }
            })
            .collect();
        let num_logits = self.runner.forward_patched(&inputs, &patches)?;
        drop(inputs);
        if defer && self.can_defer() && plan.iter().any(|p| p.samples) {
            if let Some(p) = self.sample_deferred(&plan)? {
                return Ok(Submitted::Pending(p));
            }
        }
        let vocab = self.vocab_size;
        // Where the device samples, only token ids come back, plus the rows the host still
        // samples itself (those that want log-probabilities); otherwise every row comes back.
        // `host_slot[r]`: where logits row r sits in `logits` when the host samples it.
        let mut device_tokens = std::mem::take(&mut self.sampled_buf);
        device_tokens.clear();
        let (mut logits, host_slot) = if self.runner.backend().samples_on_device() {
            let DeviceRows {
                modes,
                adjust,
                host_rows,
                host_slot,
            } = self.device_rows(&plan)?;
            if !modes.is_empty() {
                if self.can_defer() {
                    // Through a ticket, so that `last_ticket` names what the device holds.
                    let t = self.runner.sample_deferred(&modes, &adjust)?;
                    self.last_ticket = t;
                    self.runner.wait_sampled(t, &mut device_tokens)?;
                } else {
                    device_tokens = self.runner.sample_on_device(&modes, &adjust)?;
                }
            }
            (self.runner.logit_rows(&host_rows)?, host_slot)
        } else {
            let mut all = std::mem::take(&mut self.logits_buf);
            self.runner.logits_to_host_into(num_logits, &mut all)?;
            (all, (0..num_logits).map(Some).collect())
        };
        let mut row = 0;
        let mut any_logprobs = false;
        let mut all_logprobs = Vec::with_capacity(plan.len());
        for p in &plan {
            out.req_ids.push(p.id.clone());
            let st = self.batch.state_mut(&p.id)?;
            st.num_computed_tokens = p.start + p.len;
            if !p.samples {
                out.sampled_token_ids.push(Vec::new());
                all_logprobs.push(Vec::new());
                continue;
            }
            let r = row;
            row += 1;
            let s = match host_slot.get(r).copied().flatten() {
                Some(k) => {
                    let l = logits
                        .get_mut(k * vocab..(k + 1) * vocab)
                        .ok_or_else(|| ExecutorError::InvalidStep(format!("no logits row {r}")))?;
                    let view = SequenceView {
                        prompt: &st.token_ids[..st.prompt_len],
                        output: &st.token_ids[st.prompt_len..],
                        eos_token_ids: &self.eos_token_ids,
                    };
                    sample(l, &st.sampling, &view, &mut st.rng)
                }
                None => SampledToken {
                    token: device_tokens
                        .get(r)
                        .copied()
                        .filter(|&t| (t as usize) < vocab)
                        .ok_or_else(|| {
                            ExecutorError::InvalidStep(format!(
                                "the device sampled no valid token for row {r}"
                            ))
                        })?,
                    logprobs: None,
                },
            };
            st.token_ids.push(s.token);
            out.sampled_token_ids.push(vec![s.token]);
            all_logprobs.push(match s.logprobs {
                Some(lp) => {
                    any_logprobs = true;
                    vec![TokenLogprobs {
                        sampled: Logprob {
                            token_id: s.token,
                            logprob: lp.chosen,
                        },
                        top: lp
                            .top
                            .into_iter()
                            .map(|(token_id, logprob)| Logprob { token_id, logprob })
                            .collect(),
                    }]
                }
                None => Vec::new(),
            });
        }
        if any_logprobs {
            out.logprobs = Some(all_logprobs);
        }
        self.logits_buf = logits;
        self.sampled_buf = device_tokens;
        Ok(Submitted::Done(out))
    }
}

/// How the device samples a step's rows (see [`Executor::device_rows`]).
pub(crate) struct DeviceRows {
    pub modes: Vec<RowSampling>,
    pub adjust: Vec<LogitAdjust>,
    /// Rows the host samples itself, and for each sampling row its place among them.
    pub host_rows: Vec<usize>,
    pub host_slot: Vec<Option<usize>>,
}

impl<B: Backend> Executor<B> {
    /// Each sampling row's mode (one draw from its request's generator) and, for rows the
    /// device samples, its logit adjustments.
    pub(crate) fn device_rows(&mut self, plan: &[Planned]) -> Result<DeviceRows> {
        let mut rows = DeviceRows {
            modes: Vec::new(),
            adjust: Vec::new(),
            host_rows: Vec::new(),
            host_slot: Vec::new(),
        };
        for p in plan.iter().filter(|p| p.samples) {
            let st = self.batch.state_mut(&p.id)?;
            let mode = row_sampling(&st.sampling, &mut st.rng);
            let row = rows.modes.len();
            if mode == RowSampling::Host {
                rows.host_slot.push(Some(rows.host_rows.len()));
                rows.host_rows.push(row);
            } else {
                rows.host_slot.push(None);
                let view = SequenceView {
                    prompt: &st.token_ids[..st.prompt_len],
                    output: &st.token_ids[st.prompt_len..],
                    eos_token_ids: &self.eos_token_ids,
                };
                logit_adjustments(row as u32, &st.sampling, &view, &mut rows.adjust);
            }
            rows.modes.push(mode);
        }
        Ok(rows)
    }
}

fn to_u32(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| ExecutorError::InvalidStep(format!("index {v} exceeds u32")))
}
