//! `ferrum-testkit make-model --preset NAME [--dtype f32|bf16|f16] [--seed N] [--shards K]
//! [--qwen-vocab PATH] OUT_DIR`: writes a random-weight checkpoint in Hugging Face layout.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};
use ferrum_testkit::{preset, write_test_model, DType, PRESET_NAMES};

#[derive(Parser)]
#[command(
    name = "ferrum-testkit",
    about = "Random-weight test models for Ferrum"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a model directory (config, generation config, tokenizer, safetensors).
    MakeModel {
        /// tiny_llama, tiny_llama2, tiny_qwen2, tiny_qwen3, qwen3_4b or llama31_8b.
        #[arg(long)]
        preset: String,
        /// f32, bf16 or f16; defaults to the preset's (f32 for tiny, bf16 for real shapes).
        #[arg(long)]
        dtype: Option<String>,
        #[arg(long)]
        seed: Option<u64>,
        /// Number of safetensors shards (1 writes model.safetensors).
        #[arg(long)]
        shards: Option<usize>,
        /// Use Qwen's real vocabulary from this qwen.tiktoken (scripts/fetch-qwen-vocab).
        #[arg(long)]
        qwen_vocab: Option<PathBuf>,
        out_dir: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let Command::MakeModel {
        preset: name,
        dtype,
        seed,
        shards,
        qwen_vocab,
        out_dir,
    } = Cli::parse().command;
    let mut spec = preset(&name).ok_or_else(|| {
        anyhow!(
            "unknown preset {name:?}; one of {}",
            PRESET_NAMES.join(", ")
        )
    })?;
    if let Some(d) = dtype {
        spec.dtype =
            DType::parse(&d).ok_or_else(|| anyhow!("--dtype {d:?}: use f32, bf16 or f16"))?;
    }
    if let Some(s) = seed {
        spec.seed = s;
    }
    if let Some(k) = shards {
        spec.shards = k;
    }
    if let Some(path) = qwen_vocab {
        spec = spec.with_qwen_vocab(path);
    }
    write_test_model(&out_dir, &spec)
        .with_context(|| format!("writing {name} to {}", out_dir.display()))?;
    eprintln!(
        "wrote {name} ({:?}, seed {}) to {}",
        spec.dtype,
        spec.seed,
        out_dir.display()
    );
    Ok(())
}
