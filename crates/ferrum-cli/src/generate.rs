//! `ferrum generate`: one prompt through the model on the CPU, streamed to stdout.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferrum_backend::cpu::CpuBackend;
use ferrum_backend::KvCacheSpec;
use ferrum_executor::{sample, ModelRunner, Rng, SeqInput, SequenceView};
use ferrum_model::{DecoderModel, ModelBundle};
use ferrum_tokenizer::IncrementalDecoder;
use ferrum_types::SamplingParams;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Model folder (Hugging Face layout) or .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// Raw text prompt (no chat template).
    #[arg(long, conflicts_with = "chat", required_unless_present = "chat")]
    prompt: Option<String>,
    /// A user message, rendered with the model's chat template.
    #[arg(long)]
    chat: Option<String>,
    /// Optional system message for --chat.
    #[arg(long, requires = "chat")]
    system: Option<String>,
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
    /// Stop at end-of-sequence tokens only after max-tokens (for benchmarks).
    #[arg(long)]
    ignore_eos: bool,
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print generated token ids to stderr (one JSON line) after the text.
    #[arg(long)]
    print_token_ids: bool,
}

const BLOCK_SIZE: usize = 16;

pub fn run(args: GenerateArgs) -> Result<std::process::ExitCode> {
    let t_load = Instant::now();
    let bundle = ModelBundle::open(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let prompt_ids = match (&args.prompt, &args.chat) {
        (Some(p), _) => bundle.tokenizer.encode(p, true)?,
        (None, Some(msg)) => {
            let text = bundle.render_chat(args.system.as_deref(), msg)?;
            bundle.tokenizer.encode(&text, false)?
        }
        (None, None) => bail!("give --prompt or --chat"),
    };
    let cfg = bundle.config.clone();
    if prompt_ids.is_empty() {
        bail!("the prompt is empty after tokenization");
    }
    let total = prompt_ids.len() + args.max_tokens;
    if total > cfg.max_position_embeddings {
        bail!(
            "prompt ({} tokens) + max-tokens ({}) = {total} exceeds the model's context of {}",
            prompt_ids.len(),
            args.max_tokens,
            cfg.max_position_embeddings
        );
    }
    let backend = CpuBackend::new(args.threads)?;
    let model = DecoderModel::load(&backend, cfg.clone(), bundle.weights.as_ref())?;
    let num_blocks = total.div_ceil(BLOCK_SIZE);
    let spec = KvCacheSpec {
        num_layers: cfg.num_layers,
        num_kv_heads: cfg.num_kv_heads,
        head_dim: cfg.head_dim,
        block_size: BLOCK_SIZE,
        num_blocks,
    };
    let backend_name = ferrum_backend::Backend::name(&backend);
    let mut runner = ModelRunner::new(backend, model, spec, prompt_ids.len().max(1), 1)?;
    eprintln!(
        "loaded {} ({} layers, {}) on {} in {:.2}s",
        args.model.display(),
        cfg.num_layers,
        cfg.dtype,
        backend_name,
        t_load.elapsed().as_secs_f64()
    );

    let mut params: SamplingParams = bundle.generation.apply(SamplingParams::default());
    params.max_tokens = args.max_tokens;
    params.ignore_eos = args.ignore_eos;
    if let Some(t) = args.temperature {
        params.temperature = t;
    }
    if let Some(p) = args.top_p {
        params.top_p = p;
    }
    if let Some(k) = args.top_k {
        params.top_k = k;
    }
    let mut rng = args.seed.map_or_else(Rng::from_entropy, Rng::new);
    let eos = bundle.eos_token_ids();
    let block_table: Vec<u32> = (0..num_blocks as u32).collect();

    let mut out_ids: Vec<u32> = Vec::new();
    let mut decoder = IncrementalDecoder::with_prompt(&prompt_ids, true);
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    let t0 = Instant::now();
    let mut logits = runner.execute(&[SeqInput {
        tokens: &prompt_ids,
        num_computed_tokens: 0,
        block_table: &block_table,
        want_logits: true,
    }])?;
    let prefill = t0.elapsed();
    let t1 = Instant::now();
    loop {
        let view = SequenceView {
            prompt: &prompt_ids,
            output: &out_ids,
            eos_token_ids: &eos,
        };
        let tok = sample(&mut logits, &params, &view, &mut rng).token;
        out_ids.push(tok);
        let text = decoder.step(&bundle.tokenizer, &[tok])?;
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
        let stop =
            !params.ignore_eos && (eos.contains(&tok) || params.stop_token_ids.contains(&tok));
        if stop || out_ids.len() >= params.max_tokens {
            break;
        }
        logits = runner.execute(&[SeqInput {
            tokens: &[tok],
            num_computed_tokens: prompt_ids.len() + out_ids.len() - 1,
            block_table: &block_table,
            want_logits: true,
        }])?;
    }
    let decode = t1.elapsed();
    let rest = decoder.finish(&bundle.tokenizer)?;
    writeln!(stdout, "{rest}")?;
    let decode_steps = out_ids.len().saturating_sub(1).max(1);
    eprintln!(
        "prompt: {} tokens in {:.3}s ({:.1} tokens/s); generation: {} tokens in {:.3}s ({:.1} tokens/s)",
        prompt_ids.len(),
        prefill.as_secs_f64(),
        prompt_ids.len() as f64 / prefill.as_secs_f64(),
        out_ids.len(),
        decode.as_secs_f64(),
        decode_steps as f64 / decode.as_secs_f64().max(1e-9),
    );
    if args.print_token_ids {
        eprintln!(
            "{}",
            serde_json::json!({"prompt_token_ids": prompt_ids, "output_token_ids": out_ids})
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
