//! Start-up (device choice, model load, KV sizing) and the engine thread's loop.
//!
//! Device choice (`--device`): `cpu` and `cuda` are taken as asked, and `cuda` fails at start-up
//! with the reason (no driver, no GPU, a missing library, quantized GGUF weights). `auto` takes
//! CUDA when a driver and a usable GPU are present and the model is a Hugging Face checkpoint
//! (not GGUF), else the CPU, and logs why when a driver was found but CUDA was unusable.
//!
//! `--dtype` picks the CUDA backend's compute type (see `CudaDType::from_flag`); the CPU
//! backend computes in f32 and says so when another type was asked for.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use ferrum_backend::cpu::{CpuBackend, CpuNumerics};
use ferrum_backend::cuda::{self, CudaBackend, CudaDType};
use ferrum_backend::{Backend, KvCacheSpec};
use ferrum_executor::{Executor, ModelRunner};
use ferrum_model::{DecoderModel, ModelBundle};
use ferrum_scheduler::{EngineCoreOutput, ExtraKeys, Request, Scheduler, SchedulerConfig};
use ferrum_types::{EngineOutput, EngineRequest, EngineStats, FinishReason, TokenLogprobs};
use tokio::sync::{mpsc as tmpsc, watch};

use crate::handle::Command;
use crate::sizing::{plan_cpu_kv_cache, plan_gpu_kv_cache, workspace_bytes, GpuMemory, KvPlan};
use crate::{Device, EngineConfig, EngineCore, EngineError, EngineHandle, EngineInfo};

fn startup(e: &dyn std::fmt::Display) -> EngineError {
    EngineError::Startup(e.to_string())
}

/// Loads the model on the device `config.device` selects, sizes the KV cache and starts the
/// engine thread.
pub fn start_engine(
    bundle: &ModelBundle,
    config: EngineConfig,
) -> Result<(EngineHandle, EngineInfo), EngineError> {
    let cfg = &bundle.config;
    let max_model_len = match config.max_model_len {
        0 => cfg.max_position_embeddings,
        n if n > cfg.max_position_embeddings => {
            return Err(EngineError::Startup(format!(
                "--max-model-len {n} is larger than the model's context length {} \
                 (max_position_embeddings): lower --max-model-len",
                cfg.max_position_embeddings
            )))
        }
        n => n,
    };
    match config.device {
        Device::Cpu => start_cpu(bundle, config, max_model_len),
        Device::Cuda => {
            // A GGUF file of quantized tensors fails at its first such tensor, with the reason.
            let backend = CudaBackend::with_dtype(0, cuda_dtype(bundle, &config)?)
                .map_err(|e| EngineError::Startup(format!("--device cuda: {e}")))?;
            start_cuda(backend, bundle, config, max_model_len)
        }
        Device::Auto => {
            // GGUF checkpoints are mostly block-quantized, which only the CPU backend runs.
            if bundle.files.is_gguf() || !cuda::driver_present() {
                return start_cpu(bundle, config, max_model_len);
            }
            match CudaBackend::with_dtype(0, cuda_dtype(bundle, &config)?) {
                Ok(backend) => start_cuda(backend, bundle, config, max_model_len),
                Err(e) => {
                    tracing::warn!(reason = %e, "--device auto: CUDA unusable, running on the CPU");
                    start_cpu(bundle, config, max_model_len)
                }
            }
        }
    }
}

/// `--dtype` as the CUDA backend's type, for this checkpoint.
fn cuda_dtype(bundle: &ModelBundle, config: &EngineConfig) -> Result<CudaDType, EngineError> {
    CudaDType::from_flag(&config.dtype, &bundle.config.dtype).ok_or_else(|| {
        EngineError::Startup(format!(
            "--dtype {:?} is not one of auto, bfloat16, float16, half, float32, float",
            config.dtype
        ))
    })
}

fn start_cpu(
    bundle: &ModelBundle,
    config: EngineConfig,
    max_model_len: usize,
) -> Result<(EngineHandle, EngineInfo), EngineError> {
    if !matches!(config.dtype.as_str(), "auto" | "float32" | "float") {
        tracing::warn!(
            dtype = %config.dtype,
            "the CPU backend computes in float32 (quantized weights stay quantized)"
        );
    }
    // Planned before the (long) load so that a cache that cannot fit fails at once.
    let plan = plan_cpu_kv_cache(
        bundle.config.kv_bytes_per_token(4),
        config.block_size,
        max_model_len,
        config.kv_cache_memory_bytes,
    )?;
    let numerics = CpuNumerics::from_env().map_err(|e| startup(&e))?;
    let backend = CpuBackend::with_numerics(config.threads, numerics).map_err(|e| startup(&e))?;
    let model = DecoderModel::load(&backend, bundle.config.clone(), bundle.weights.as_ref())
        .map_err(|e| startup(&e))?;
    let spec = kv_spec(&bundle.config, config.block_size, plan.num_blocks);
    let runner = ModelRunner::new(
        backend,
        model,
        spec,
        config.max_num_batched_tokens,
        config.max_num_seqs,
    )
    .map_err(|e| startup(&e))?;
    launch(runner, bundle, config, max_model_len, plan)
}

fn kv_spec(cfg: &ferrum_model::ModelConfig, block_size: usize, num_blocks: usize) -> KvCacheSpec {
    KvCacheSpec {
        num_layers: cfg.num_layers,
        num_kv_heads: cfg.num_kv_heads,
        head_dim: cfg.head_dim,
        block_size,
        num_blocks,
    }
}

fn start_cuda(
    backend: CudaBackend,
    bundle: &ModelBundle,
    config: EngineConfig,
    max_model_len: usize,
) -> Result<(EngineHandle, EngineInfo), EngineError> {
    let (free0, total) = backend.memory_info().map_err(|e| startup(&e))?;
    let t = std::time::Instant::now();
    let model = DecoderModel::load(&backend, bundle.config.clone(), bundle.weights.as_ref())
        .map_err(|e| {
            EngineError::Startup(format!("loading the weights on {}: {e}", backend.name()))
        })?;
    // Waits for the last copies, so the time is the whole upload.
    let (free1, _) = backend.memory_info().map_err(|e| startup(&e))?;
    let mem = GpuMemory {
        total,
        used: total.saturating_sub(free1),
        weights: free0.saturating_sub(free1),
    };
    let secs = t.elapsed().as_secs_f64();
    tracing::info!(
        seconds = format!("{secs:.2}"),
        gb_per_s = format!("{:.1}", mem.weights as f64 / secs.max(1e-9) / 1e9),
        "weights on the device"
    );
    // The step's peak, profiled: a prompt pass of --max-num-batched-tokens tokens over a KV
    // cache just large enough for it, then whatever the device lost beyond weights and that
    // cache is the workspace the real cache must leave room for.
    let profile_tokens = config.max_num_batched_tokens;
    let profile_seq = max_model_len.min(profile_tokens).max(1);
    let profile_blocks =
        ModelRunner::<CudaBackend>::profile_blocks(profile_tokens, profile_seq, config.block_size)
            + 1;
    let elem = backend.dtype().size();
    let per_block = (bundle.config.kv_bytes_per_token(elem) * config.block_size) as u64;
    let estimate = workspace_bytes(
        &bundle.config,
        config.max_num_batched_tokens,
        config.max_num_seqs,
        elem,
    );
    if mem.used + estimate + profile_blocks as u64 * per_block > mem.total {
        return Err(EngineError::Startup(format!(
            "the model's weights take {} MiB of the card's {} MiB; a step of \
             --max-num-batched-tokens {} needs about {} MiB more: lower \
             --max-num-batched-tokens or use a larger card",
            mem.weights >> 20,
            mem.total >> 20,
            config.max_num_batched_tokens,
            (estimate + profile_blocks as u64 * per_block) >> 20
        )));
    }
    let mut runner = ModelRunner::new(
        backend,
        model,
        kv_spec(&bundle.config, config.block_size, profile_blocks),
        config.max_num_batched_tokens,
        config.max_num_seqs,
    )
    .map_err(|e| startup(&e))?;
    let t = std::time::Instant::now();
    runner
        .profile_run(profile_tokens, profile_seq)
        .map_err(|e| {
            EngineError::Startup(format!("profiling a step of {profile_tokens} tokens: {e}"))
        })?;
    let (free2, _) = runner.backend().memory_info().map_err(|e| startup(&e))?;
    let workspace = free1
        .saturating_sub(free2)
        .saturating_sub(profile_blocks as u64 * per_block);
    tracing::info!(
        seconds = format!("{:.2}", t.elapsed().as_secs_f64()),
        tokens = profile_tokens,
        peak_workspace_mib = workspace >> 20,
        estimated_mib = estimate >> 20,
        "step memory profiled"
    );
    let plan = plan_gpu_kv_cache(
        bundle.config.kv_bytes_per_token(elem),
        config.block_size,
        max_model_len,
        config.gpu_memory_utilization,
        mem,
        workspace,
        config.kv_cache_memory_bytes,
    )?;
    tracing::info!(
        device = %runner.backend().name(),
        weights_mib = mem.weights >> 20,
        workspace_mib = workspace >> 20,
        kv_cache_mib = plan.bytes >> 20,
        gpu_memory_utilization = config.gpu_memory_utilization,
        "GPU memory plan"
    );
    runner
        .replace_kv_cache(kv_spec(&bundle.config, config.block_size, plan.num_blocks))
        .map_err(|e| startup(&e))?;
    launch(runner, bundle, config, max_model_len, plan)
}

/// The device-independent rest of start-up: scheduler, runner, executor and the thread.
fn launch<B: Backend + 'static>(
    mut runner: ModelRunner<B>,
    bundle: &ModelBundle,
    config: EngineConfig,
    max_model_len: usize,
    plan: KvPlan,
) -> Result<(EngineHandle, EngineInfo), EngineError> {
    let cfg = &bundle.config;
    let sched_cfg = SchedulerConfig {
        max_num_seqs: config.max_num_seqs,
        max_num_batched_tokens: config.max_num_batched_tokens,
        max_model_len,
        block_size: config.block_size,
        num_gpu_blocks: plan.num_blocks,
        enable_prefix_caching: config.enable_prefix_caching,
        enable_chunked_prefill: config.enable_chunked_prefill,
        policy: config.scheduling_policy,
        long_prefill_token_threshold: None,
    };
    let scheduler = Scheduler::new(sched_cfg).map_err(|e| EngineError::Startup(e.to_string()))?;
    let info = EngineInfo {
        device: runner.backend().name(),
        max_model_len,
        num_blocks: plan.num_blocks - 1,
        block_size: config.block_size,
        kv_cache_bytes: plan.bytes,
        max_concurrency: plan.max_concurrency,
        vocab_size: cfg.vocab_size,
    };
    if !config.enforce_eager {
        runner.enable_graphs(max_model_len);
    }
    let eos = bundle.eos_token_ids();
    let executor = Executor::new(runner, eos.clone(), config.seed);
    let async_scheduling = config.async_scheduling != Some(false) && executor.can_defer();
    if async_scheduling {
        tracing::info!("async scheduling: each step is planned while the previous one runs");
    } else if config.async_scheduling == Some(true) {
        tracing::info!(
            device = %info.device,
            "async scheduling needs sampling on the device; steps run one at a time"
        );
    }
    let core = EngineCore::new(scheduler, executor).with_async_scheduling(async_scheduling);
    tracing::info!(
        device = %info.device,
        num_blocks = info.num_blocks,
        block_size = info.block_size,
        kv_cache_bytes = info.kv_cache_bytes,
        max_model_len,
        max_concurrency = format!("{:.2}", info.max_concurrency),
        "KV cache planned"
    );

    let (cmd_tx, cmd_rx) = mpsc::channel();
    let stats0 = EngineStats {
        num_gpu_blocks: info.num_blocks,
        block_size: info.block_size,
        ..EngineStats::default()
    };
    let (stats_tx, stats_rx) = watch::channel(stats0);
    let (dead_tx, dead_rx) = watch::channel(None);
    std::thread::Builder::new()
        .name("ferrum-engine".into())
        .spawn(move || {
            let mut lp = EngineLoop {
                core,
                clients: HashMap::new(),
                eos,
                stats: stats_tx,
                prompt_tokens_total: 0,
                generation_tokens_total: 0,
            };
            let reason = lp.run(cmd_rx);
            // The model and device go before `dead` is set: a caller that waits for it knows
            // the device is released (and its drop-time reports written).
            drop(lp);
            if let Some(r) = &reason {
                tracing::error!(reason = %r, "engine stopped");
            }
            let _ = dead_tx.send(Some(reason.unwrap_or_else(|| "engine shut down".into())));
        })
        .map_err(|e| startup(&e))?;
    Ok((
        EngineHandle {
            commands: cmd_tx,
            stats: stats_rx,
            dead: dead_rx,
        },
        info,
    ))
}

struct Client {
    tx: tmpsc::UnboundedSender<EngineOutput>,
    num_prompt_tokens: usize,
    started: bool,
}

struct EngineLoop<B: Backend> {
    core: EngineCore<B>,
    clients: HashMap<String, Client>,
    eos: Vec<u32>,
    stats: watch::Sender<EngineStats>,
    prompt_tokens_total: u64,
    generation_tokens_total: u64,
}

fn final_output(id: &str, reason: FinishReason, error: Option<String>) -> EngineOutput {
    EngineOutput {
        request_id: id.to_string(),
        new_token_ids: Vec::new(),
        new_logprobs: Vec::new(),
        finish_reason: Some(reason),
        stop_token_id: None,
        num_prompt_tokens: 0,
        num_cached_tokens: 0,
        error,
    }
}

impl<B: Backend> EngineLoop<B> {
    /// Runs until shutdown (returns `None`) or a failure (returns the reason).
    fn run(&mut self, rx: mpsc::Receiver<Command>) -> Option<String> {
        loop {
            // Block only when idle: a busy engine takes whatever commands arrived and steps on.
            let first = if self.core.has_unfinished_requests() {
                rx.try_recv().ok()
            } else {
                match rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return None,
                }
            };
            for cmd in first
                .into_iter()
                .chain(std::iter::from_fn(|| rx.try_recv().ok()))
            {
                if !self.handle(cmd) {
                    self.fail_all(FinishReason::Abort, None);
                    self.publish();
                    return None;
                }
            }
            if self.core.has_unfinished_requests() {
                match catch_unwind(AssertUnwindSafe(|| self.core.step())) {
                    Ok(Ok(outputs)) => self.dispatch(outputs),
                    Ok(Err(e)) => return Some(self.die(e.to_string())),
                    Err(_) => return Some(self.die("the engine step panicked".into())),
                }
            }
            self.publish();
        }
    }

    /// Applies one command; `false` means shut down.
    fn handle(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Add(req, tx) => self.add(*req, tx),
            Command::Abort(id) => {
                self.core.abort(&id);
                self.clients.remove(&id);
            }
            Command::Shutdown => return false,
        }
        true
    }

    fn add(&mut self, req: EngineRequest, tx: tmpsc::UnboundedSender<EngineOutput>) {
        let id = req.request_id.clone();
        if self.clients.contains_key(&id) {
            let _ = tx.send(final_output(
                &id,
                FinishReason::Error,
                Some(format!("request id {id:?} is already in use")),
            ));
            return;
        }
        let arrival = now_secs() - req.arrival_time.elapsed().as_secs_f64();
        let num_prompt_tokens = req.prompt_token_ids.len();
        let request = Request::new(id.clone(), req.prompt_token_ids, req.sampling)
            .with_eos_token_ids(self.eos.clone())
            .with_priority(req.priority)
            .with_arrival_time(arrival)
            .with_extra_keys(ExtraKeys {
                cache_salt: req.cache_salt,
                adapter_id: None,
            });
        match self.core.add_request(request) {
            Ok(()) => {
                self.clients.insert(
                    id,
                    Client {
                        tx,
                        num_prompt_tokens,
                        started: false,
                    },
                );
            }
            Err(e) => {
                let _ = tx.send(final_output(&id, FinishReason::Error, Some(e.to_string())));
            }
        }
    }

    fn dispatch(&mut self, outputs: Vec<EngineCoreOutput>) {
        for o in outputs {
            let id: &str = &o.request_id;
            let Some(client) = self.clients.get_mut(id) else {
                continue;
            };
            if !client.started {
                client.started = true;
                self.prompt_tokens_total += client.num_prompt_tokens as u64;
            }
            self.generation_tokens_total += o.new_token_ids.len() as u64;
            let out = EngineOutput {
                request_id: id.to_string(),
                new_logprobs: o
                    .new_logprobs
                    .iter()
                    .map(|l| TokenLogprobs {
                        token_id: l.sampled.token_id,
                        logprob: l.sampled.logprob,
                        top: l.top.iter().map(|t| (t.token_id, t.logprob)).collect(),
                    })
                    .collect(),
                new_token_ids: o.new_token_ids,
                finish_reason: o.finish_reason,
                stop_token_id: o.stop_reason,
                num_prompt_tokens: client.num_prompt_tokens,
                num_cached_tokens: o.num_cached_tokens,
                error: None,
            };
            let done = out.finish_reason.is_some();
            if client.tx.send(out).is_err() {
                // The client went away between steps: free its blocks now.
                self.core.abort(id);
                self.clients.remove(id);
            } else if done {
                self.clients.remove(id);
            }
        }
    }

    fn fail_all(&mut self, reason: FinishReason, error: Option<String>) {
        let ids: Vec<String> = self.clients.keys().cloned().collect();
        for id in ids {
            if let Some(c) = self.clients.remove(&id) {
                let _ = c.tx.send(final_output(&id, reason, error.clone()));
            }
            self.core.abort(&id);
        }
    }

    fn die(&mut self, reason: String) -> String {
        self.fail_all(FinishReason::Error, Some(reason.clone()));
        self.publish();
        reason
    }

    fn publish(&self) {
        let s = self.core.scheduler().stats();
        self.stats.send_modify(|st| {
            st.num_running = s.num_running;
            st.num_waiting = s.num_waiting;
            st.kv_cache_usage = s.kv_cache_usage;
            st.num_preemptions_total = s.num_preemptions_total;
            st.prefix_cache_queries_total = s.prefix_cache_queries;
            st.prefix_cache_hits_total = s.prefix_cache_hits;
            st.prompt_tokens_total = self.prompt_tokens_total;
            st.generation_tokens_total = self.generation_tokens_total;
        });
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_bundle(dir: &std::path::Path) -> ModelBundle {
        ferrum_testkit::write_test_model(dir, &ferrum_testkit::tiny_llama()).unwrap();
        ModelBundle::open(dir).unwrap()
    }

    #[test]
    fn device_cuda_without_a_usable_gpu_fails_at_start_up_with_the_reason() {
        if CudaBackend::new(0).is_ok() {
            eprintln!("skipped: a CUDA device is usable here");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig {
            device: Device::Cuda,
            max_model_len: 64,
            ..EngineConfig::default()
        };
        let e = start_engine(&tiny_bundle(dir.path()), config)
            .err()
            .expect("must fail");
        let m = e.to_string();
        assert!(m.starts_with("--device cuda: "), "{m}");
        assert!(
            m.contains("--device cpu") || m.contains("LD_LIBRARY_PATH"),
            "{m}"
        );
    }

    #[test]
    fn device_auto_without_a_usable_gpu_runs_on_the_cpu() {
        if CudaBackend::new(0).is_ok() {
            eprintln!("skipped: a CUDA device is usable here");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig {
            max_model_len: 64,
            threads: 1,
            ..EngineConfig::default()
        };
        let (_h, info) = start_engine(&tiny_bundle(dir.path()), config).unwrap();
        assert!(info.device.starts_with("cpu"), "{}", info.device);
    }
}
