//! One engine step on the device: apply the scheduler's diffs, run the forward pass over every
//! scheduled request's tokens, and sample for the requests whose scheduled tokens reach the end
//! of what they know (a prompt chunk that completes the prompt, or a decode step).

use ferrum_backend::{Backend, RowSampling};
use ferrum_scheduler::{Logprob, ModelRunnerOutput, RequestId, SchedulerOutput, TokenLogprobs};

use crate::error::{ExecutorError, Result};
use crate::input_batch::InputBatch;
use crate::runner::{ModelRunner, SeqInput};
use crate::sampler::{logit_adjustments, row_sampling, sample, SampledToken, SequenceView};
use crate::Rng;

pub struct Executor<B: Backend> {
    runner: ModelRunner<B>,
    batch: InputBatch,
    eos_token_ids: Vec<u32>,
    vocab_size: usize,
    /// The host-sampled logits of the last step, kept so that a step allocates no new
    /// `[rows, vocab]` buffer (megabytes at a few dozen rows).
    logits_buf: Vec<f32>,
}

/// One scheduled request's slice of the step.
struct Planned {
    id: RequestId,
    start: usize,
    len: usize,
    samples: bool,
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
        }
    }

    pub fn runner(&self) -> &ModelRunner<B> {
        &self.runner
    }

    /// Runs one scheduled step and samples where a request completed its known tokens.
    pub fn execute(&mut self, so: &SchedulerOutput) -> Result<ModelRunnerOutput> {
        self.batch.update(so)?;
        let order = so
            .scheduled_new_reqs
            .iter()
            .map(|r| &r.req_id)
            .chain(&so.scheduled_cached_reqs.req_ids);
        let mut plan = Vec::new();
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
            plan.push(Planned {
                id: id.clone(),
                start: st.num_computed_tokens,
                len: n,
                samples: end == st.token_ids.len(),
            });
        }
        let mut out = ModelRunnerOutput::default();
        if plan.is_empty() {
            return Ok(out);
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
        let num_logits = self.runner.forward(&inputs)?;
        drop(inputs);
        let vocab = self.vocab_size;
        // Where the device samples, only token ids come back, plus the rows the host still
        // samples itself (those that want log-probabilities); otherwise every row comes back.
        // `host_slot[r]`: where logits row r sits in `logits` when the host samples it.
        let mut device_tokens = Vec::new();
        let (mut logits, host_slot) = if self.runner.backend().samples_on_device() {
            let mut adjust = Vec::new();
            let mut modes = Vec::new();
            let mut host_rows = Vec::new();
            let mut host_slot = Vec::new();
            for p in plan.iter().filter(|p| p.samples) {
                let st = self.batch.requests.get_mut(&p.id).ok_or_else(|| {
                    ExecutorError::InvalidStep(format!("request {} vanished", p.id))
                })?;
                let mode = row_sampling(&st.sampling, &mut st.rng);
                let row = modes.len();
                if mode == RowSampling::Host {
                    host_slot.push(Some(host_rows.len()));
                    host_rows.push(row);
                } else {
                    host_slot.push(None);
                    let view = SequenceView {
                        prompt: &st.token_ids[..st.prompt_len],
                        output: &st.token_ids[st.prompt_len..],
                        eos_token_ids: &self.eos_token_ids,
                    };
                    logit_adjustments(row as u32, &st.sampling, &view, &mut adjust);
                }
                modes.push(mode);
            }
            device_tokens = self.runner.sample_on_device(&modes, &adjust)?;
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
            let st =
                self.batch.requests.get_mut(&p.id).ok_or_else(|| {
                    ExecutorError::InvalidStep(format!("request {} vanished", p.id))
                })?;
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
        Ok(out)
    }
}
