//! `ferrum bench latency`: end-to-end time of one batch through the engine in this process, like
//! `vllm bench latency`: `--batch-size` random-token prompts of `--input-len` tokens, each asked
//! for exactly `--output-len` tokens (`ignore_eos`, temperature 1, top-p 1), submitted together;
//! `--num-iters-warmup` untimed batches, then `--num-iters` timed ones.
//!
//! Reports the mean and the 10/25/50/75/90/99th percentiles (numpy's linear interpolation) in
//! seconds, and vLLM's JSON (`avg_latency`, `latencies`, `percentiles`) with `--output-json`.
//! Besides vLLM's lines it prints the mean time to the first token and the mean time per output
//! token after the first (TPOT, as `bench serve` defines it): the latency averages the prefill
//! into every token, TPOT is the decode step alone. Each request's stream is read on its own
//! thread, so that arrival times are not those of a reader busy with another stream.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use ferrum_engine::{start_engine, EngineConfig, EngineHandle};
use ferrum_model::ModelBundle;
use ferrum_types::{EngineRequest, FinishReason, SamplingParams};
use serde_json::json;

use super::dataset::{allowed_tokens, sample_random, RandomSpec};
use super::metrics::percentile;
use super::report::percentile_word;

#[derive(Args, Debug)]
pub struct LatencyArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value_t = 32)]
    input_len: usize,
    #[arg(long, default_value_t = 128)]
    output_len: usize,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 10)]
    num_iters_warmup: usize,
    #[arg(long, default_value_t = 30)]
    num_iters: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    placement: crate::placement::PlacementArgs,
    #[arg(long)]
    kv_cache_memory_bytes: Option<u64>,
    /// The engine's context limit (default: input + output length). A server runs with the
    /// model's own limit; decode graphs and attention splits are sized from it.
    #[arg(long)]
    max_model_len: Option<usize>,
    /// Write vLLM's latency JSON here.
    #[arg(long)]
    output_json: Option<PathBuf>,
}

const PERCENTAGES: [f64; 6] = [10.0, 25.0, 50.0, 75.0, 90.0, 99.0];

/// One timed batch: its wall time, and per request the time to its first token and its mean
/// time per output token after the first (seconds).
struct BatchTiming {
    latency: f64,
    ttft: Vec<f64>,
    tpot: Vec<f64>,
}

/// Reads one request's stream to the end: (first-token time, last-token time) since `start`.
fn drain(
    mut s: ferrum_engine::RequestStream,
    start: Instant,
    expected: usize,
    i: usize,
) -> Result<(f64, f64)> {
    let (mut n, mut first, mut last) = (0, None, 0.0);
    while let Some(o) = s.blocking_next() {
        if o.finish_reason == Some(FinishReason::Error) {
            bail!("request {i} failed: {}", o.error.unwrap_or_default());
        }
        if !o.new_token_ids.is_empty() {
            last = start.elapsed().as_secs_f64();
            first.get_or_insert(last);
        }
        n += o.new_token_ids.len();
    }
    if n != expected {
        bail!("request {i} produced {n} tokens, expected {expected}");
    }
    Ok((first.unwrap_or(last), last))
}

/// Runs one batch to completion.
fn run_batch(
    engine: &EngineHandle,
    prompts: &[Vec<u32>],
    a: &LatencyArgs,
    iter: usize,
) -> Result<BatchTiming> {
    let start = Instant::now();
    let streams = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let sp = SamplingParams {
                max_tokens: a.output_len,
                ignore_eos: true,
                seed: Some(a.seed.wrapping_add((iter * prompts.len() + i) as u64)),
                ..SamplingParams::default()
            };
            engine.add_request(EngineRequest::new(
                format!("latency-{iter}-{i}"),
                p.clone(),
                sp,
            ))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let times = std::thread::scope(|scope| {
        let readers: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, s)| scope.spawn(move || drain(s, start, a.output_len, i)))
            .collect();
        readers
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a stream reader panicked")))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let latency = start.elapsed().as_secs_f64();
    let decode_tokens = a.output_len.saturating_sub(1).max(1) as f64;
    Ok(BatchTiming {
        latency,
        ttft: times.iter().map(|&(f, _)| f).collect(),
        tpot: times
            .iter()
            .map(|&(f, l)| (l - f) / decode_tokens)
            .collect(),
    })
}

pub fn run(a: LatencyArgs) -> Result<std::process::ExitCode> {
    if a.batch_size == 0 || a.num_iters == 0 || a.output_len == 0 {
        bail!("--batch-size, --num-iters and --output-len must be at least 1");
    }
    let model = crate::resolve::resolve_model(&a.model.to_string_lossy(), &Default::default())?;
    let bundle = ModelBundle::open(&model)?;
    let vocab = bundle.tokenizer.vocab_size().min(bundle.config.vocab_size);
    let allowed = allowed_tokens(vocab, bundle.tokenizer.special_token_ids());
    let spec = RandomSpec {
        input_len: a.input_len,
        output_len: a.output_len,
        range_ratio: 0.0,
        prefix_len: 0,
        seed: a.seed,
    };
    // Distinct consecutive-id runs per prompt: no prefix-cache hits inside a batch; each
    // iteration reuses the same prompts, as vLLM's benchmark does.
    let prompts: Vec<Vec<u32>> = sample_random(&spec, &allowed, 0, a.batch_size)?
        .into_iter()
        .map(|r| r.prompt_ids)
        .collect();
    let need = a.input_len + a.output_len;
    let max_model_len = a.max_model_len.unwrap_or(need);
    if max_model_len < need {
        bail!("--max-model-len {max_model_len} is below input + output length {need}");
    }
    let config = a.placement.apply(EngineConfig {
        max_num_seqs: a.batch_size.max(1),
        max_model_len,
        // Every iteration sees the same prompts: without this the later ones would skip prefill.
        enable_prefix_caching: false,
        kv_cache_memory_bytes: a.kv_cache_memory_bytes,
        seed: Some(a.seed),
        ..EngineConfig::default()
    });
    let (engine, info) = start_engine(&bundle, config)?;
    println!(
        "Device {}: batch {}, input {}, output {} tokens",
        info.device, a.batch_size, a.input_len, a.output_len
    );
    println!("Warming up...");
    for i in 0..a.num_iters_warmup {
        run_batch(&engine, &prompts, &a, i)?;
    }
    let (mut latencies, mut ttft, mut tpot) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..a.num_iters {
        let t = run_batch(&engine, &prompts, &a, a.num_iters_warmup + i)?;
        latencies.push(t.latency);
        ttft.extend(t.ttft);
        tpot.extend(t.tpot);
    }
    engine.shutdown_and_wait(std::time::Duration::from_secs(10));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let avg = mean(&latencies);
    println!("Avg latency: {avg} seconds");
    println!("Avg time to first token: {} seconds", mean(&ttft));
    if a.output_len > 1 {
        println!(
            "Avg time per output token after the first: {} seconds",
            mean(&tpot)
        );
    }
    let mut pct = serde_json::Map::new();
    for p in PERCENTAGES {
        let v = percentile(&latencies, p);
        println!("{}% percentile latency: {v} seconds", percentile_word(p));
        pct.insert(percentile_word(p), json!(v));
    }
    if let Some(path) = &a.output_json {
        let result = json!({ "avg_latency": avg, "latencies": latencies, "percentiles": pct });
        std::fs::write(path, serde_json::to_string_pretty(&result)?)?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}
