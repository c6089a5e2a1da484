//! `ferrum bench`: measurements with vLLM's methodology.

pub mod throughput;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Offline throughput: random token prompts through the engine in-process.
    Throughput(throughput::ThroughputArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        BenchCommand::Throughput(a) => throughput::run(a),
    }
}
