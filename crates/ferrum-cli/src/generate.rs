//! `ferrum generate`: one prompt streamed to stdout, or a file of prompts run through the engine
//! together (offline batch generation), on the CPU.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferrum_engine::{start_engine, EngineConfig, EngineHandle};
use ferrum_model::ModelBundle;
use ferrum_tokenizer::IncrementalDecoder;
use ferrum_types::{EngineRequest, FinishReason, SamplingParams};
use serde::Deserialize;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Model folder (Hugging Face layout), .gguf file, or hub id (org/name[:file.gguf]).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    source: crate::resolve::SourceArgs,
    /// Raw text prompt (no chat template).
    #[arg(long, conflicts_with_all = ["chat", "prompts_file"])]
    prompt: Option<String>,
    /// A user message, rendered with the model's chat template.
    #[arg(long, conflicts_with = "prompts_file")]
    chat: Option<String>,
    /// Optional system message for --chat.
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// A file of JSON lines, each `{"prompt": TEXT}` or `{"chat": MESSAGE}` (optionally with
    /// `max_tokens`, `temperature`, `top_p`, `top_k`, `seed`), all run together; results are
    /// printed as JSON lines in input order.
    #[arg(long)]
    prompts_file: Option<PathBuf>,
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// 0 is greedy; default: the model's generation_config.json, else 1.0.
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    top_p: Option<f32>,
    #[arg(long)]
    top_k: Option<i32>,
    #[arg(long)]
    seed: Option<u64>,
    /// Keep generating after end-of-sequence tokens, up to --max-tokens (for benchmarks).
    #[arg(long)]
    ignore_eos: bool,
    #[command(flatten)]
    placement: crate::placement::PlacementArgs,
    /// Print generated token ids: to stderr (one JSON line) after the text, or, with
    /// --prompts-file, as `output_token_ids` in each output line.
    #[arg(long)]
    print_token_ids: bool,
}

/// One line of `--prompts-file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptLine {
    prompt: Option<String>,
    chat: Option<String>,
    system: Option<String>,
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i32>,
    seed: Option<u64>,
}

struct Loaded {
    bundle: ModelBundle,
    engine: EngineHandle,
}

fn load(args: &GenerateArgs, max_model_len: usize) -> Result<Loaded> {
    let t = Instant::now();
    let bundle = ModelBundle::open(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let ctx = bundle.config.max_position_embeddings;
    let config = args.placement.apply(EngineConfig {
        seed: args.seed,
        max_model_len: max_model_len.min(ctx),
        max_num_batched_tokens: 2048.max(max_model_len.min(ctx)),
        ..EngineConfig::default()
    });
    let (engine, info) = start_engine(&bundle, config)?;
    eprintln!(
        "loaded {} ({} layers, {}) on {} in {:.2}s; KV cache {} blocks of {} tokens",
        args.model.display(),
        bundle.config.num_layers,
        bundle.config.dtype,
        info.device,
        t.elapsed().as_secs_f64(),
        info.num_blocks,
        info.block_size
    );
    Ok(Loaded { bundle, engine })
}

fn sampling(args: &GenerateArgs, bundle: &ModelBundle) -> SamplingParams {
    let mut p = bundle.generation.apply(SamplingParams::default());
    p.max_tokens = args.max_tokens;
    p.ignore_eos = args.ignore_eos;
    if let Some(t) = args.temperature {
        p.temperature = t;
    }
    if let Some(v) = args.top_p {
        p.top_p = v;
    }
    if let Some(k) = args.top_k {
        p.top_k = k;
    }
    p.seed = args.seed;
    p
}

fn encode(
    bundle: &ModelBundle,
    prompt: Option<&str>,
    chat: Option<&str>,
    system: Option<&str>,
) -> Result<Vec<u32>> {
    let ids = match (prompt, chat) {
        (Some(p), _) => bundle.tokenizer.encode(p, true)?,
        (None, Some(msg)) => {
            let text = bundle.render_chat(system, msg)?;
            bundle.tokenizer.encode(&text, false)?
        }
        (None, None) => bail!("give a prompt or a chat message"),
    };
    if ids.is_empty() {
        bail!("the prompt is empty after tokenization");
    }
    Ok(ids)
}

fn check_context(prompt_len: usize, max_tokens: usize, ctx: usize) -> Result<()> {
    if prompt_len + max_tokens > ctx {
        bail!(
            "prompt ({prompt_len} tokens) + max-tokens ({max_tokens}) = {} exceeds the model's context of {ctx}",
            prompt_len + max_tokens
        );
    }
    Ok(())
}

pub fn run(mut args: GenerateArgs) -> Result<std::process::ExitCode> {
    args.model = crate::resolve::resolve_model(&args.model.to_string_lossy(), &args.source)?;
    if let Some(file) = &args.prompts_file {
        return run_file(&args, file);
    }
    // Tokenize first so an over-long prompt fails before the model loads.
    let probe = ModelBundle::open(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let prompt = encode(
        &probe,
        args.prompt.as_deref(),
        args.chat.as_deref(),
        args.system.as_deref(),
    )?;
    check_context(
        prompt.len(),
        args.max_tokens,
        probe.config.max_position_embeddings,
    )?;
    drop(probe);
    let Loaded { bundle, engine } = load(&args, prompt.len() + args.max_tokens)?;
    let params = sampling(&args, &bundle);
    let t0 = Instant::now();
    let mut stream =
        engine.add_request(EngineRequest::new("generate-0", prompt.clone(), params))?;
    let mut decoder = IncrementalDecoder::with_prompt(&prompt, true);
    let mut out_ids = Vec::new();
    let mut first_token_at = None;
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    while let Some(o) = stream.blocking_next() {
        if o.finish_reason == Some(FinishReason::Error) {
            bail!("generation failed: {}", o.error.unwrap_or_default());
        }
        if first_token_at.is_none() && !o.new_token_ids.is_empty() {
            first_token_at = Some(t0.elapsed());
        }
        out_ids.extend_from_slice(&o.new_token_ids);
        stdout.write_all(
            decoder
                .step(&bundle.tokenizer, &o.new_token_ids)?
                .as_bytes(),
        )?;
        stdout.flush()?;
    }
    let total = t0.elapsed();
    writeln!(stdout, "{}", decoder.finish(&bundle.tokenizer)?)?;
    let prefill = first_token_at.unwrap_or(total);
    let decode = total.saturating_sub(prefill);
    let decode_steps = out_ids.len().saturating_sub(1).max(1);
    eprintln!(
        "prompt: {} tokens in {:.3}s ({:.1} tokens/s); generation: {} tokens in {:.3}s ({:.1} tokens/s)",
        prompt.len(),
        prefill.as_secs_f64(),
        prompt.len() as f64 / prefill.as_secs_f64().max(1e-9),
        out_ids.len(),
        decode.as_secs_f64(),
        decode_steps as f64 / decode.as_secs_f64().max(1e-9),
    );
    if args.print_token_ids {
        eprintln!(
            "{}",
            serde_json::json!({"prompt_token_ids": prompt, "output_token_ids": out_ids})
        );
    }
    engine.shutdown_and_wait(std::time::Duration::from_secs(10));
    Ok(std::process::ExitCode::SUCCESS)
}

fn run_file(args: &GenerateArgs, file: &PathBuf) -> Result<std::process::ExitCode> {
    let probe = ModelBundle::open(&args.model)?;
    let ctx = probe.config.max_position_embeddings;
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
    );
    let mut jobs = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let p: PromptLine = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}:{}: expected {{\"prompt\": …}} or {{\"chat\": …}}",
                file.display(),
                n + 1
            )
        })?;
        let ids = encode(
            &probe,
            p.prompt.as_deref(),
            p.chat.as_deref(),
            p.system.as_deref(),
        )
        .with_context(|| format!("{}:{}", file.display(), n + 1))?;
        let max_tokens = p.max_tokens.unwrap_or(args.max_tokens);
        check_context(ids.len(), max_tokens, ctx)
            .with_context(|| format!("{}:{}", file.display(), n + 1))?;
        jobs.push((ids, p));
    }
    drop(probe);
    let longest = jobs
        .iter()
        .map(|(ids, p)| ids.len() + p.max_tokens.unwrap_or(args.max_tokens))
        .max()
        .unwrap_or(1);
    let Loaded { bundle, engine } = load(args, longest)?;
    let t0 = Instant::now();
    let mut streams = Vec::with_capacity(jobs.len());
    for (i, (ids, p)) in jobs.iter().enumerate() {
        let mut sp = sampling(args, &bundle);
        sp.max_tokens = p.max_tokens.unwrap_or(args.max_tokens);
        if let Some(t) = p.temperature {
            sp.temperature = t;
        }
        if let Some(v) = p.top_p {
            sp.top_p = v;
        }
        if let Some(k) = p.top_k {
            sp.top_k = k;
        }
        if p.seed.is_some() {
            sp.seed = p.seed;
        }
        streams.push(engine.add_request(EngineRequest::new(
            format!("generate-{i}"),
            ids.clone(),
            sp,
        ))?);
    }
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    let mut generated = 0usize;
    for (i, s) in streams.iter_mut().enumerate() {
        let mut ids = Vec::new();
        let mut finish = None;
        let mut error = None;
        while let Some(o) = s.blocking_next() {
            ids.extend_from_slice(&o.new_token_ids);
            finish = o.finish_reason;
            error = o.error;
        }
        generated += ids.len();
        let text = bundle.tokenizer.decode(&ids, true)?;
        let mut line = serde_json::json!({
            "index": i,
            "text": text,
            "prompt_tokens": jobs[i].0.len(),
            "completion_tokens": ids.len(),
            "finish_reason": finish.map(FinishReason::as_str),
            "error": error,
        });
        if args.print_token_ids {
            line["output_token_ids"] = serde_json::json!(ids);
        }
        writeln!(stdout, "{line}")?;
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "{} prompts, {generated} tokens generated in {secs:.2}s ({:.1} tokens/s overall)",
        jobs.len(),
        generated as f64 / secs.max(1e-9)
    );
    engine.shutdown_and_wait(std::time::Duration::from_secs(10));
    Ok(std::process::ExitCode::SUCCESS)
}
