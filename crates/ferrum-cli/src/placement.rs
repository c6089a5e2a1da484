//! Where `generate` and the in-process benchmarks run the engine: one set of flags, so that
//! the commands name and default them alike.

use clap::Args;
use ferrum_engine::EngineConfig;

#[derive(Args, Debug, Clone)]
pub struct PlacementArgs {
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Where to run: auto (CUDA when a GPU is usable), cpu or cuda.
    #[arg(long, value_enum, default_value_t = ferrum_config::Device::Auto)]
    pub device: ferrum_config::Device,
    /// Fraction of the GPU's memory to use (weights, activations and KV cache).
    #[arg(long, default_value_t = 0.9)]
    pub gpu_memory_utilization: f32,
    /// Run every GPU step op by op: no CUDA graphs for decode steps.
    #[arg(long)]
    pub enforce_eager: bool,
    /// Plan and launch each GPU step while the previous one runs (vLLM's
    /// --async-scheduling); on by default where the device samples.
    #[arg(long, overrides_with = "no_async_scheduling")]
    pub async_scheduling: bool,
    #[arg(long, overrides_with = "async_scheduling", hide = true)]
    pub no_async_scheduling: bool,
    /// GPU compute type: auto (the checkpoint's 16-bit type; bf16 for f32 checkpoints),
    /// bfloat16, float16 (half) or float32 (float). The CPU computes in f32.
    #[arg(long, default_value = "auto", value_parser = ["auto", "bfloat16", "float16", "half", "float32", "float"])]
    pub dtype: String,
}

impl PlacementArgs {
    /// `config` with these settings.
    pub fn apply(&self, config: EngineConfig) -> EngineConfig {
        EngineConfig {
            threads: self.threads,
            device: engine_device(self.device),
            gpu_memory_utilization: self.gpu_memory_utilization,
            enforce_eager: self.enforce_eager,
            async_scheduling: ferrum_config::either(
                self.async_scheduling,
                self.no_async_scheduling,
            ),
            dtype: self.dtype.clone(),
            ..config
        }
    }
}

/// `--device` as the engine names it.
pub(crate) fn engine_device(d: ferrum_config::Device) -> ferrum_engine::Device {
    match d {
        ferrum_config::Device::Auto => ferrum_engine::Device::Auto,
        ferrum_config::Device::Cpu => ferrum_engine::Device::Cpu,
        ferrum_config::Device::Cuda => ferrum_engine::Device::Cuda,
    }
}
