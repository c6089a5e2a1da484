//! `ferrum validate PATH`: the pre-deployment check of a model folder or file.
//!
//! Exit code 0 when the model can be served; 1 with the reason when it cannot.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ferrum_model::{ModelBundle, ModelFiles};

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Model folder (Hugging Face layout), .gguf file, or hub id (org/name[:file.gguf]).
    path: PathBuf,
    #[command(flatten)]
    source: crate::resolve::SourceArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

const ROUND_TRIP: &str = "Hello, world! Ferrum validates 123 tokens: naïve café, 日本語, emoji 😀.";

pub fn run(args: ValidateArgs) -> Result<std::process::ExitCode> {
    let mut report = serde_json::Map::new();
    let mut problems: Vec<String> = Vec::new();
    let path = crate::resolve::resolve_model(&args.path.to_string_lossy(), &args.source)?;
    let files = match ModelFiles::discover(&path) {
        Ok(f) => f,
        Err(e) => {
            println!("{}: cannot be served: {e}", args.path.display());
            return Ok(std::process::ExitCode::from(1));
        }
    };
    println!("model: {}", args.path.display());
    println!("files:");
    let mut file_list = Vec::new();
    for e in files.entries() {
        let mark = if e.present {
            "found  "
        } else if e.required {
            "MISSING"
        } else {
            "absent "
        };
        println!("  {mark} {:<36} {}", e.name, e.note);
        if e.required && !e.present {
            problems.push(format!("missing {} ({})", e.name, e.note));
        }
        file_list.push(
            serde_json::json!({"name": e.name, "present": e.present, "required": e.required}),
        );
    }
    report.insert("files".into(), file_list.into());

    if problems.is_empty() {
        match ModelBundle::from_files(files) {
            Ok(b) => describe(&b, &mut report, &mut problems),
            Err(e) => problems.push(e.to_string()),
        }
    }
    report.insert("problems".into(), problems.clone().into());
    report.insert("servable".into(), problems.is_empty().into());
    if args.json {
        println!("{}", serde_json::Value::Object(report));
    }
    if problems.is_empty() {
        println!("result: OK, this model can be served");
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
        println!("result: FAILED, this model cannot be served");
        Ok(std::process::ExitCode::from(1))
    }
}

fn describe(
    b: &ModelBundle,
    report: &mut serde_json::Map<String, serde_json::Value>,
    problems: &mut Vec<String>,
) {
    let c = &b.config;
    let weight_bytes = b.weights.total_bytes();
    println!(
        "architecture:        {} (model_type {})",
        c.architecture.hf_name(),
        c.model_type
    );
    println!("vocab size:          {}", c.vocab_size);
    println!("layers:              {}", c.num_layers);
    println!("hidden size:         {}", c.hidden_size);
    println!("intermediate size:   {}", c.intermediate_size);
    println!(
        "attention heads:     {} query, {} key/value, head_dim {}",
        c.num_heads, c.num_kv_heads, c.head_dim
    );
    println!("context length:      {}", c.max_position_embeddings);
    println!("dtype:               {}", c.dtype);
    println!(
        "parameters:          {} ({:.1}M)",
        c.num_parameters(),
        c.num_parameters() as f64 / 1e6
    );
    println!(
        "weight bytes:        {} ({})",
        weight_bytes,
        human_bytes(weight_bytes)
    );
    println!(
        "KV cache per token:  {} (bf16), {} (f32)",
        human_bytes(c.kv_bytes_per_token(2) as u64),
        human_bytes(c.kv_bytes_per_token(4) as u64)
    );
    for (k, v) in [
        ("architecture", serde_json::json!(c.architecture.hf_name())),
        ("model_type", c.model_type.clone().into()),
        ("vocab_size", c.vocab_size.into()),
        ("num_layers", c.num_layers.into()),
        ("hidden_size", c.hidden_size.into()),
        ("num_heads", c.num_heads.into()),
        ("num_kv_heads", c.num_kv_heads.into()),
        ("head_dim", c.head_dim.into()),
        ("context_length", c.max_position_embeddings.into()),
        ("dtype", c.dtype.clone().into()),
        ("parameters", c.num_parameters().into()),
        ("weight_bytes", weight_bytes.into()),
        ("kv_bytes_per_token_bf16", c.kv_bytes_per_token(2).into()),
    ] {
        report.insert(k.into(), v);
    }
    // Every tensor the decoder will ask for must be present with the right shape.
    match b.check_tensors() {
        Ok(()) => println!(
            "tensors:             all {} present with expected shapes",
            b.weights.names().len()
        ),
        Err(e) => problems.push(format!("weights: {e}")),
    }
    let tok = &b.tokenizer;
    println!("tokenizer:           loaded, {} tokens", tok.vocab_size());
    if tok.vocab_size() > c.vocab_size {
        problems.push(format!(
            "tokenizer has {} tokens but the model's vocab_size is {}",
            tok.vocab_size(),
            c.vocab_size
        ));
    }
    match tok
        .encode(ROUND_TRIP, false)
        .and_then(|ids| Ok((tok.decode(&ids, false)?, ids.len())))
    {
        Ok((back, n)) if back == ROUND_TRIP => {
            println!("round-trip:          OK ({n} tokens)");
            report.insert("round_trip".into(), true.into());
        }
        Ok((back, _)) => {
            println!("round-trip:          differs: {back:?}");
            report.insert("round_trip".into(), false.into());
            problems.push("tokenize/detokenize round-trip changed the text".into());
        }
        Err(e) => problems.push(format!("tokenizer: {e}")),
    }
    match b.render_chat(Some("You are a test."), "Hi") {
        Ok(s) => {
            println!(
                "chat template:       OK ({} characters for a test conversation)",
                s.len()
            );
            report.insert("chat_template".into(), true.into());
        }
        Err(e) => {
            println!("chat template:       not usable: {e}");
            report.insert("chat_template".into(), false.into());
        }
    }
    println!("eos token ids:       {:?}", b.eos_token_ids());
}
