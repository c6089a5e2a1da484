//! `ferrum bench throughput`: prompts of vLLM's random dataset (fixed seed, `ignore_eos`; see
//! `dataset.rs`) run through the engine in this process, at most `--max-concurrency` in flight,
//! like `vllm bench throughput` with the random dataset. Reports request and token throughput
//! and mean time to first token.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use ferrum_engine::{start_engine, EngineConfig, SchedulingPolicy};
use ferrum_model::ModelBundle;
use ferrum_types::{EngineRequest, FinishReason, SamplingParams};

use super::dataset::{allowed_tokens, sample_random, RandomSpec, SampleRequest};

#[derive(Args, Debug)]
pub struct ThroughputArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value_t = 64)]
    num_prompts: usize,
    #[arg(long, default_value_t = 128)]
    random_input_len: usize,
    #[arg(long, default_value_t = 128)]
    random_output_len: usize,
    /// Lengths vary uniformly within ±this fraction of the input and output lengths (vLLM's).
    #[arg(long, default_value_t = 0.0)]
    random_range_ratio: f64,
    /// Tokens shared by every prompt in front of its random part (prefix-cache experiments).
    #[arg(long, default_value_t = 0)]
    random_prefix_len: usize,
    /// Most requests in flight (default: all at once).
    #[arg(long)]
    max_concurrency: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    placement: crate::placement::PlacementArgs,
    #[arg(long, default_value_t = 256)]
    max_num_seqs: usize,
    #[arg(long, default_value_t = 2048)]
    max_num_batched_tokens: usize,
    #[arg(long)]
    no_enable_prefix_caching: bool,
    #[arg(long)]
    kv_cache_memory_bytes: Option<u64>,
    /// The engine's context limit (default: the longest request).
    #[arg(long)]
    max_model_len: Option<usize>,
    /// Write the results as JSON here.
    #[arg(long)]
    output_json: Option<PathBuf>,
}

struct Sample {
    ttft: Duration,
    output_tokens: usize,
}

pub fn run(a: ThroughputArgs) -> Result<std::process::ExitCode> {
    let model = crate::resolve::resolve_model(&a.model.to_string_lossy(), &Default::default())?;
    let bundle = ModelBundle::open(&model)?;
    let vocab = bundle.tokenizer.vocab_size().min(bundle.config.vocab_size);
    let allowed = allowed_tokens(vocab, bundle.tokenizer.special_token_ids());
    let spec = RandomSpec {
        input_len: a.random_input_len,
        output_len: a.random_output_len,
        range_ratio: a.random_range_ratio,
        prefix_len: a.random_prefix_len,
        seed: a.seed,
    };
    let requests = sample_random(&spec, &allowed, 0, a.num_prompts)?;
    let longest = |f: fn(&SampleRequest) -> usize| requests.iter().map(f).max().unwrap_or(0);
    let need = longest(|r| r.prompt_len) + longest(|r| r.expected_output_len);
    let max_len = a.max_model_len.unwrap_or(need);
    if max_len < need {
        bail!("--max-model-len {max_len} is below the longest request's {need} tokens");
    }
    let config = a.placement.apply(EngineConfig {
        max_num_seqs: a.max_num_seqs,
        max_num_batched_tokens: a.max_num_batched_tokens,
        max_model_len: max_len,
        enable_prefix_caching: !a.no_enable_prefix_caching,
        scheduling_policy: SchedulingPolicy::Fcfs,
        kv_cache_memory_bytes: a.kv_cache_memory_bytes,
        seed: Some(a.seed),
        ..EngineConfig::default()
    });
    let (engine, info) = start_engine(&bundle, config)?;
    let concurrency = a
        .max_concurrency
        .unwrap_or(a.num_prompts)
        .clamp(1, a.num_prompts.max(1));
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let samples: Vec<Sample> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                s.spawn(|| -> Result<Vec<Sample>> {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(r) = requests.get(i) else {
                            return Ok(mine);
                        };
                        let mut sp = SamplingParams::greedy(r.expected_output_len);
                        sp.ignore_eos = true;
                        let t0 = Instant::now();
                        let mut stream = engine.add_request(EngineRequest::new(
                            format!("bench-{i}"),
                            r.prompt_ids.clone(),
                            sp,
                        ))?;
                        let mut ttft = None;
                        let mut n = 0;
                        while let Some(o) = stream.blocking_next() {
                            if o.finish_reason == Some(FinishReason::Error) {
                                bail!("request {i} failed: {}", o.error.unwrap_or_default());
                            }
                            if ttft.is_none() && !o.new_token_ids.is_empty() {
                                ttft = Some(t0.elapsed());
                            }
                            n += o.new_token_ids.len();
                        }
                        mine.push(Sample {
                            ttft: ttft.unwrap_or_default(),
                            output_tokens: n,
                        });
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().map_err(|_| anyhow::anyhow!("worker panicked"))?)
            .collect::<Result<Vec<_>>>()
            .map(|v| v.into_iter().flatten().collect())
    })?;
    let secs = start.elapsed().as_secs_f64();
    let stats = engine.stats();
    engine.shutdown_and_wait(std::time::Duration::from_secs(10));
    let out_tokens: usize = samples.iter().map(|s| s.output_tokens).sum();
    let in_tokens: usize = requests.iter().map(|r| r.prompt_len).sum();
    let mean_ttft =
        samples.iter().map(|s| s.ttft.as_secs_f64()).sum::<f64>() / samples.len().max(1) as f64;
    let result = serde_json::json!({
        "device": info.device,
        "num_prompts": a.num_prompts,
        "max_concurrency": concurrency,
        "input_len": a.random_prefix_len + a.random_input_len,
        "output_len": a.random_output_len,
        "elapsed_s": secs,
        "requests_per_s": a.num_prompts as f64 / secs,
        "output_tokens_per_s": out_tokens as f64 / secs,
        "total_tokens_per_s": (in_tokens + out_tokens) as f64 / secs,
        "mean_ttft_ms": mean_ttft * 1e3,
        "num_preemptions": stats.num_preemptions_total,
        "prefix_cache_hit_rate": stats.prefix_cache_hits_total as f64 / stats.prefix_cache_queries_total.max(1) as f64,
    });
    println!(
        "{} requests ({} in flight) in {secs:.2}s: {:.2} req/s, {:.1} output tokens/s, {:.1} total tokens/s, mean TTFT {:.1} ms, {} preemptions, prefix-cache hit rate {:.2}",
        a.num_prompts,
        concurrency,
        result["requests_per_s"].as_f64().unwrap_or(0.0),
        result["output_tokens_per_s"].as_f64().unwrap_or(0.0),
        result["total_tokens_per_s"].as_f64().unwrap_or(0.0),
        mean_ttft * 1e3,
        stats.num_preemptions_total,
        result["prefix_cache_hit_rate"].as_f64().unwrap_or(0.0),
    );
    if let Some(path) = a.output_json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}
