//! `ferrum`: serve, generate with and validate LLMs.

mod bench;
mod generate;
mod list;
mod placement;
mod pull;
mod resolve;
mod rm;
mod serve;
mod validate;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ferrum", version, about = "Ferrum: an LLM inference server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a model over an OpenAI-compatible HTTP API (vLLM's flags; see `ferrum serve --help`).
    Serve(serve::ServeCommand),
    /// Generate text from a prompt or a chat message.
    Generate(generate::GenerateArgs),
    /// Check that a model folder or file can be served.
    Validate(validate::ValidateArgs),
    /// Download a model from the Hugging Face hub (or HF_ENDPOINT) or ModelScope into the local store.
    Pull(pull::PullArgs),
    /// List the models in the local store.
    List(list::ListArgs),
    /// Delete a model from the local store.
    Rm(rm::RmArgs),
    /// Benchmarks (vLLM's methodology).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `serve` sets up its own logging from its flags (--log-level, --log-format).
    let command = match cli.command {
        Command::Serve(a) => return serve::run(a),
        other => other,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRUM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match command {
        Command::Generate(a) => generate::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Bench(c) => bench::run(c),
        Command::Pull(a) => pull::run(a),
        Command::List(a) => list::run(a),
        Command::Rm(a) => rm::run(a),
        Command::Serve(_) => unreachable!("handled above"),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
