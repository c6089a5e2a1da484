//! `ferrum bench`: measurements with vLLM's methodology (`vllm bench serve|throughput|latency`).
//!
//! `serve` loads any OpenAI-compatible server over HTTP; `throughput` and `latency` run the engine
//! in this process. The dataset, arrival process and metric arithmetic live in their own files so
//! each can be checked against vLLM's definitions by itself.

pub mod arrivals;
pub mod client;
pub mod dataset;
pub mod latency;
pub mod metrics;
pub mod report;
pub mod request;
pub mod serve;
pub mod sse;
pub mod throughput;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Online serving: stream requests to an OpenAI-compatible server (vLLM's `bench serve`).
    Serve(Box<serve::ServeArgs>),
    /// Offline throughput: random token prompts through the engine in-process.
    Throughput(throughput::ThroughputArgs),
    /// Latency of one batch through the engine in-process (vLLM's `bench latency`).
    Latency(latency::LatencyArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        BenchCommand::Serve(a) => serve::run(*a),
        BenchCommand::Throughput(a) => throughput::run(a),
        BenchCommand::Latency(a) => latency::run(a),
    }
}
