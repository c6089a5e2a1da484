//! One HTTP request's generation: its engine requests (one per choice), merged into a single
//! sequence of [`Event`]s that the streaming and non-streaming responses both consume.
//!
//! Invariants:
//! - The driver owns everything the request holds: the engine streams and the admission
//!   permits. Dropping it (client gone, response done, panic) aborts every unfinished engine
//!   request and gives the permits back; no task is spawned that could outlive it.
//! - When the server's drain time is over (`abort_all`), the driver ends with an error event.
//! - Metrics and the one log line per request are written when the driver is dropped, so
//!   every way a request ends is counted exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrum_tokenizer::Tokenizer;
use ferrum_types::{EngineOutput, EngineRequest, SamplingParams, TokenId};
use futures_util::future::select_all;
use futures_util::StreamExt;
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::error::ApiError;
use crate::output::{ChoiceConfig, ChoiceState, Delta, FinishReason};
use crate::registry::ServedModel;
use crate::state::{AppState, ModelContext};

pub enum Event {
    Delta(Delta),
    /// The request failed; no more events follow.
    Error(ApiError),
}

/// What the log line says about the request.
pub struct RequestInfo {
    pub request_id: String,
    pub endpoint: &'static str,
    pub model: String,
    /// The model's index in the server (its metrics).
    pub engine: usize,
    pub stream: bool,
    pub arrival: Instant,
    /// Only with --enable-log-outputs.
    pub prompt_text: Option<String>,
}

pub struct Driver {
    state: AppState,
    tokenizer: Arc<Tokenizer>,
    pub choices: Vec<ChoiceState>,
    abort_all: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
    info: RequestInfo,
    n: usize,
    error: Option<String>,
    output_text: Option<String>,
}

enum Next {
    Output(usize, Option<EngineOutput>),
    ShutDown,
}

impl Driver {
    /// Hands every choice of every prompt to the engine. Choice `i` of prompt `p` has index
    /// `p * n + i`; with a seed, choice `i` samples with `seed + i`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        state: &AppState,
        model: &ModelContext,
        permit: OwnedSemaphorePermit,
        prompts: &[Vec<TokenId>],
        sampling: &[SamplingParams],
        n: usize,
        config: &ChoiceConfig,
        priority: i32,
        cache_salt: Option<&str>,
        info: RequestInfo,
    ) -> Result<Self, ApiError> {
        let total = prompts.len() * n;
        let mut choices = Vec::with_capacity(total);
        for (p, (prompt, params)) in prompts.iter().zip(sampling).enumerate() {
            for i in 0..n {
                let index = p * n + i;
                let id = if total == 1 {
                    info.request_id.clone()
                } else {
                    format!("{}-{index}", info.request_id)
                };
                let mut params = params.clone();
                params.seed = params.seed.map(|s| s.wrapping_add(i as u64));
                let mut req = EngineRequest::new(id, prompt.clone(), params);
                req.priority = priority;
                req.cache_salt = cache_salt.map(str::to_string);
                req.arrival_time = info.arrival;
                // On failure, the streams already in `choices` are dropped: those requests abort.
                let stream = model.engine.add_request(req).map_err(ApiError::from)?;
                choices.push(ChoiceState::new(index, stream, prompt, config));
            }
        }
        if let Some(m) = state.models.get(info.engine) {
            m.metrics
                .queue_time
                .observe(info.arrival.elapsed().as_secs_f64());
        }
        Ok(Self {
            state: state.clone(),
            tokenizer: model.tokenizer.clone(),
            choices,
            abort_all: state.abort_all.subscribe(),
            _permit: permit,
            output_text: state.options.log_outputs.then(String::new),
            info,
            n: n.max(1),
            error: None,
        })
    }

    /// The next event, or `None` when every choice has finished.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            let next = {
                let pending: Vec<_> = self
                    .choices
                    .iter_mut()
                    .filter_map(|c| {
                        let index = c.index;
                        c.stream
                            .as_mut()
                            .map(|s| Box::pin(async move { (index, s.next().await) }))
                    })
                    .collect();
                if pending.is_empty() {
                    return None;
                }
                let abort = &mut self.abort_all;
                tokio::select! {
                    biased;
                    _ = abort.wait_for(|v| *v) => Next::ShutDown,
                    ((index, out), _, _) = select_all(pending) => Next::Output(index, out),
                }
            };
            match next {
                Next::ShutDown => {
                    return Some(self.fail(ApiError::Unavailable(
                        "the server shut down before the request finished".into(),
                    )))
                }
                Next::Output(index, None) => {
                    let reason = self
                        .model()
                        .and_then(|m| m.context.get())
                        .and_then(|m| m.engine.health().err())
                        .unwrap_or_else(|| "the engine stopped".into());
                    let _ = index;
                    return Some(self.fail(ApiError::Engine(reason)));
                }
                Next::Output(index, Some(out)) => {
                    let Some(pos) = self.choices.iter().position(|c| c.index == index) else {
                        continue;
                    };
                    let had_tokens = self.choices[pos].completion_tokens;
                    let last = self.choices[pos].last_token_at;
                    let new_tokens = out.new_token_ids.len();
                    let result = self.choices[pos].on_output(out, &self.tokenizer);
                    match result {
                        Err(e) => return Some(self.fail(e)),
                        Ok(delta) => {
                            self.observe(pos, had_tokens, last, new_tokens);
                            if let Some(text) = &mut self.output_text {
                                text.push_str(&delta.reasoning);
                                text.push_str(&delta.content);
                            }
                            if delta.is_empty() {
                                continue;
                            }
                            return Some(Event::Delta(delta));
                        }
                    }
                }
            }
        }
    }

    /// The model this request runs on.
    fn model(&self) -> Option<&ServedModel> {
        self.state.models.get(self.info.engine)
    }

    fn observe(&self, pos: usize, had_tokens: usize, last: Option<Instant>, new_tokens: usize) {
        let c = &self.choices[pos];
        let Some(m) = self.model().map(|m| &m.metrics) else {
            return;
        };
        if new_tokens > 0 {
            match (had_tokens, last) {
                (0, _) => m.ttft.observe(self.info.arrival.elapsed().as_secs_f64()),
                (_, Some(prev)) => {
                    let gap = prev.elapsed().as_secs_f64() / new_tokens as f64;
                    for _ in 0..new_tokens {
                        m.itl.observe(gap);
                    }
                }
                _ => {}
            }
        }
        if let Some(reason) = c.finish_reason {
            m.e2e.observe(self.info.arrival.elapsed().as_secs_f64());
            m.count_finished(metric_reason(reason));
        }
    }

    fn fail(&mut self, e: ApiError) -> Event {
        self.error = Some(e.to_string());
        for c in &mut self.choices {
            if !c.is_finished() {
                c.abort();
                if let Some(m) = self.state.models.get(self.info.engine) {
                    m.metrics.count_finished("error");
                }
            }
        }
        Event::Error(e)
    }

    /// Prompt tokens, each prompt counted once (its `n` choices share it).
    pub fn prompt_tokens(&self) -> usize {
        self.choices
            .iter()
            .filter(|c| c.index % self.n == 0)
            .map(|c| c.prompt_tokens)
            .sum()
    }

    pub fn completion_tokens(&self) -> usize {
        self.choices.iter().map(|c| c.completion_tokens).sum()
    }

    pub fn cached_tokens(&self) -> usize {
        self.choices
            .iter()
            .map(|c| c.cached_tokens)
            .max()
            .unwrap_or(0)
    }
}

fn metric_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop | FinishReason::ToolCalls => "stop",
        FinishReason::Length => "length",
        FinishReason::Abort => "abort",
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let mut aborted = false;
        for c in &mut self.choices {
            if !c.is_finished() {
                // The client went away (or the response was dropped) mid-generation.
                c.abort();
                aborted = true;
                if let Some(m) = self.state.models.get(self.info.engine) {
                    m.metrics.count_finished("abort");
                }
            }
        }
        if !self.state.options.log_requests {
            return;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let first = self.choices.iter().filter_map(|c| c.first_token_at).min();
        let reasons: Vec<&str> = self
            .choices
            .iter()
            .map(|c| c.finish_reason.map_or("none", FinishReason::as_str))
            .collect();
        let outcome = match (&self.error, aborted) {
            (Some(_), _) => "error",
            (None, true) => "client_gone",
            _ => "ok",
        };
        tracing::info!(
            target: "ferrum::request",
            request_id = %self.info.request_id,
            endpoint = self.info.endpoint,
            model = %self.info.model,
            stream = self.info.stream,
            n = self.choices.len(),
            outcome,
            error = self.error.as_deref().unwrap_or(""),
            finish_reasons = %reasons.join(","),
            prompt_tokens = self.prompt_tokens(),
            cached_tokens = self.cached_tokens(),
            completion_tokens = self.completion_tokens(),
            ttft_ms = first.map_or(-1.0, |t| ms(t.duration_since(self.info.arrival))),
            e2e_ms = ms(self.info.arrival.elapsed()),
            prompt = self.info.prompt_text.as_deref().unwrap_or(""),
            output = self.output_text.as_deref().unwrap_or(""),
            "request finished"
        );
    }
}
