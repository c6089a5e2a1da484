//! The flags of `ferrum serve`, one struct per concern, with vLLM's names and meanings.
//!
//! Invariants:
//! - Every long flag name here is the one `vllm serve` uses for the same setting, so compose
//!   files and scripts written for vLLM keep working; flags vLLM has that change nothing here
//!   are accepted in [`CompatArgs`] and reported as ignored.
//! - A boolean setting `--x` has a hidden `--no-x` twin; the last one given wins. The resolved
//!   value is read through a method, never from the two raw fields.
//! - Nothing here reads the environment or files: `crate::layers` builds the argument list
//!   (file < environment < command line) that these structs are parsed from.

use std::path::PathBuf;

use clap::{Args, Parser, ValueEnum};

use crate::human::{parse_human_count, parse_keep_alive, parse_max_model_len, ContextLen};
use crate::models::ModelEntry;

/// Everything `ferrum serve` accepts.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "ferrum serve",
    about = "Serve a model over an OpenAI-compatible HTTP API (a drop-in for `vllm serve`)",
    args_override_self = true,
    after_long_help = crate::layers::ENV_HELP
)]
pub struct ServeArgs {
    /// Model folder (Hugging Face layout) or .gguf file.
    #[arg(value_name = "MODEL")]
    pub model_tag: Option<String>,

    /// The `models:` list of the --config file (several models, each with its own settings);
    /// set by `crate::layers`, empty when the command line or the environment names the model.
    #[arg(skip)]
    pub models: Vec<ModelEntry>,

    /// A YAML or JSON file whose keys are long flag names (dashes or underscores).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
    #[command(flatten)]
    pub parallel: ParallelArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub logging: LoggingArgs,
    #[command(flatten)]
    pub compat: CompatArgs,
}

impl ServeArgs {
    /// The first model to serve: the positional MODEL, else the first `--model`, else the first
    /// entry of `models:`.
    pub fn model_path(&self) -> Option<&str> {
        self.model_tag
            .as_deref()
            .or(self.model.model.first().map(String::as_str))
            .or(self.models.first().map(|e| e.model.as_str()))
    }

    /// Every model given on the command line or in the environment: the positional MODEL, then
    /// each `--model` in order (a model named twice is served once).
    pub fn model_paths(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for m in self.model_tag.iter().chain(&self.model.model) {
            if !out.contains(&m.as_str()) {
                out.push(m);
            }
        }
        out
    }
}

/// What to load and how to present it.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Model")]
pub struct ModelArgs {
    /// Model folder or .gguf file. Give it several times to serve several models, each with
    /// its own engine (the positional MODEL comes first); per-model settings go in the
    /// --config file's `models:` list.
    #[arg(long, value_name = "MODEL", action = clap::ArgAction::Append)]
    pub model: Vec<String>,
    /// Names the API answers to; the first is reported in responses and metrics.
    /// Default: the model's folder or file name.
    #[arg(long, num_args = 1.., value_name = "NAME")]
    pub served_model_name: Vec<String>,
    /// Context length (prompt + output) in tokens: `4096`, `32k` (= 32000), `32K` (= 32768),
    /// `auto` or `-1` for the model's own.
    #[arg(long, value_parser = parse_max_model_len, allow_hyphen_values = true, value_name = "TOKENS")]
    pub max_model_len: Option<ContextLen>,
    /// GPU weight, activation and KV-cache type: auto, bfloat16, float16 (half), float32 (float);
    /// auto keeps a bf16/f16 checkpoint's type and runs f32 checkpoints in bf16. The CPU computes
    /// in f32.
    #[arg(long, default_value = "auto")]
    pub dtype: String,
    /// Seed of the engine's random state (requests with a `seed` are reproducible regardless).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A chat template: a file path, or the template text itself.
    #[arg(long, value_name = "FILE_OR_TEMPLATE")]
    pub chat_template: Option<String>,
    /// Sampling defaults: `auto` (the model's generation_config.json), `vllm` (none), or a folder
    /// holding a generation_config.json.
    #[arg(long, default_value = "auto")]
    pub generation_config: String,
    /// The largest `top_logprobs` / `logprobs` a request may ask for.
    #[arg(long, default_value_t = 20)]
    pub max_logprobs: usize,
    /// Branch, tag or commit of a hub model id (default: main; master on ModelScope).
    #[arg(long, value_name = "REVISION")]
    pub revision: Option<String>,
    /// Folder that hub models are downloaded to and looked up in, in the Hugging Face cache
    /// layout (default: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub).
    #[arg(long, value_name = "DIR")]
    pub download_dir: Option<std::path::PathBuf>,
    /// Where hub model ids are downloaded from: huggingface (HF_ENDPOINT picks a mirror) or
    /// modelscope. Default: modelscope when FERRUM_USE_MODELSCOPE=true, else huggingface.
    #[arg(long, value_parser = ["huggingface", "modelscope"], value_name = "SOURCE")]
    pub model_source: Option<String>,
    /// Stop a model's engine after this long without requests (`300`, `5m`, `1h`) and start
    /// it again on the next request, giving its memory back meanwhile. Unset: always loaded.
    #[arg(long, value_parser = parse_keep_alive, value_name = "DURATION")]
    pub keep_alive: Option<std::time::Duration>,
}

/// The KV cache.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Cache")]
pub struct CacheArgs {
    /// Fraction of the device's memory Ferrum may use (weights, activations and KV cache).
    #[arg(long, default_value_t = 0.9)]
    pub gpu_memory_utilization: f32,
    /// An explicit KV-cache size in bytes (`4G`, `512M`); overrides --gpu-memory-utilization.
    #[arg(long, value_parser = parse_human_count, value_name = "BYTES")]
    pub kv_cache_memory_bytes: Option<u64>,
    /// Tokens per KV block.
    #[arg(long, default_value_t = 16)]
    pub block_size: usize,
    /// Reuse the KV of shared prompt prefixes (on by default).
    #[arg(long, overrides_with = "no_enable_prefix_caching")]
    pub enable_prefix_caching: bool,
    #[arg(long, overrides_with = "enable_prefix_caching", hide = true)]
    pub no_enable_prefix_caching: bool,
}

impl CacheArgs {
    pub fn prefix_caching(&self) -> bool {
        resolve(
            self.enable_prefix_caching,
            self.no_enable_prefix_caching,
            true,
        )
    }
}

/// Which requests run each step.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Scheduler")]
pub struct SchedulerArgs {
    /// Requests running at once.
    #[arg(long, default_value_t = 256)]
    pub max_num_seqs: usize,
    /// Tokens computed per engine step (prompt chunks and decodes together).
    #[arg(long, default_value_t = 2048)]
    pub max_num_batched_tokens: usize,
    /// Split long prompts over several steps (on by default).
    #[arg(long, overrides_with = "no_enable_chunked_prefill")]
    pub enable_chunked_prefill: bool,
    #[arg(long, overrides_with = "enable_chunked_prefill", hide = true)]
    pub no_enable_chunked_prefill: bool,
    /// Order of admission: first come first served, or by the request's `priority` (lower first).
    #[arg(long, value_enum, default_value_t = SchedulingPolicy::Fcfs)]
    pub scheduling_policy: SchedulingPolicy,
    /// Requests admitted but not yet finished, beyond which new ones get 429. Default: four
    /// times --max-num-seqs.
    #[arg(long, value_name = "N")]
    pub max_queued_requests: Option<usize>,
    /// Plan and launch each GPU step while the previous one runs (sampled tokens stay on the
    /// device); on by default where the device samples, as in vLLM. Steps with penalties or
    /// logprobs run one at a time; the CPU always runs steps one at a time.
    #[arg(long, overrides_with = "no_async_scheduling")]
    pub async_scheduling: bool,
    #[arg(long, overrides_with = "async_scheduling", hide = true)]
    pub no_async_scheduling: bool,
}

impl SchedulerArgs {
    /// `Some` where a flag chose; `None` leaves it to the engine (on where it can).
    pub fn async_scheduling(&self) -> Option<bool> {
        either(self.async_scheduling, self.no_async_scheduling)
    }

    pub fn chunked_prefill(&self) -> bool {
        resolve(
            self.enable_chunked_prefill,
            self.no_enable_chunked_prefill,
            true,
        )
    }

    /// The bound on requests in the server at once (running and waiting).
    pub fn queue_bound(&self) -> usize {
        self.max_queued_requests
            .unwrap_or_else(|| self.max_num_seqs.saturating_mul(4))
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulingPolicy {
    Fcfs,
    Priority,
}

/// Devices and threads.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Parallelism")]
pub struct ParallelArgs {
    /// Devices one model is split over (this build runs one).
    #[arg(long, default_value_t = 1)]
    pub tensor_parallel_size: usize,
    /// Where to run: auto, cpu or cuda.
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// CPU threads for the model (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Run every GPU step op by op: no CUDA graphs for decode steps.
    #[arg(long)]
    pub enforce_eager: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Auto,
    Cpu,
    Cuda,
}

/// The HTTP front end.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Server")]
pub struct ServerArgs {
    /// Address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Keys accepted as `Authorization: Bearer KEY` (several allowed). Without one, no auth.
    #[arg(long, num_args = 1.., value_name = "KEY")]
    pub api_key: Vec<String>,
    /// Origins allowed by CORS (`*` for any). Without one, no CORS headers are sent.
    #[arg(long, num_args = 1.., value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// Methods allowed by CORS (with --allowed-origins); default `*` (any), as in vLLM.
    #[arg(long, num_args = 1.., value_name = "METHOD")]
    pub allowed_methods: Vec<String>,
    /// Request headers allowed by CORS (with --allowed-origins); default `*` (any), as in vLLM.
    #[arg(long, num_args = 1.., value_name = "HEADER")]
    pub allowed_headers: Vec<String>,
    /// Let browsers send cookies and Authorization to the API across origins (CORS
    /// credentials; with --allowed-origins).
    #[arg(long)]
    pub allow_credentials: bool,
    /// Seconds to let running requests finish after SIGTERM before aborting them (0: abort now).
    #[arg(long, default_value_t = 30)]
    pub shutdown_timeout: u64,
    /// Let the model call the tools a request offers (needs --tool-call-parser).
    #[arg(long, overrides_with = "no_enable_auto_tool_choice")]
    pub enable_auto_tool_choice: bool,
    #[arg(long, overrides_with = "enable_auto_tool_choice", hide = true)]
    pub no_enable_auto_tool_choice: bool,
    /// How tool calls are found in the output: hermes (Qwen) or llama3_json.
    #[arg(long, value_name = "PARSER")]
    pub tool_call_parser: Option<String>,
    /// Where the reasoning is found in the output: qwen3 or deepseek_r1.
    #[arg(long, value_name = "PARSER")]
    pub reasoning_parser: Option<String>,
    /// Serve /metrics without the API key (Prometheus scrapers usually carry none).
    #[arg(long)]
    pub disable_metrics_auth: bool,
    /// Largest request body in bytes (`8M`).
    #[arg(long, value_parser = parse_human_count, default_value = "8M", value_name = "BYTES")]
    pub max_request_body_bytes: u64,
}

impl ServerArgs {
    pub fn auto_tool_choice(&self) -> bool {
        resolve(
            self.enable_auto_tool_choice,
            self.no_enable_auto_tool_choice,
            false,
        )
    }
}

/// Logs.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Logging")]
pub struct LoggingArgs {
    /// trace, debug, info, warning, error or critical.
    #[arg(long, visible_alias = "uvicorn-log-level", default_value = "info")]
    pub log_level: String,
    /// `text` for people, `json` for log collectors (one object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Also append the log lines to this file (the console still gets them).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// No per-request log line.
    #[arg(long)]
    pub disable_log_requests: bool,
    /// Put prompt text and outputs into the per-request log line (off: only sizes and timings).
    #[arg(long)]
    pub enable_log_outputs: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// vLLM flags that have no effect here, accepted so that existing command lines still start.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Accepted for vLLM compatibility (no effect)")]
pub struct CompatArgs {
    /// No effect: no model code is ever executed.
    #[arg(long)]
    pub trust_remote_code: bool,
    /// No effect: engine stats are always on /metrics.
    #[arg(long)]
    pub disable_log_stats: bool,
    /// No effect: there is no separate access log.
    #[arg(long)]
    pub disable_uvicorn_access_log: bool,
    /// No effect: `prompt_tokens_details.cached_tokens` is always reported.
    #[arg(long)]
    pub enable_prompt_tokens_details: bool,
    /// No effect: there are no /docs pages.
    #[arg(long)]
    pub disable_fastapi_docs: bool,
    /// No effect: per-request lines are on unless --disable-log-requests.
    #[arg(long)]
    pub enable_log_requests: bool,
}

impl CompatArgs {
    /// The flags given that change nothing, for a start-up note.
    pub fn ignored(&self) -> Vec<&'static str> {
        [
            (self.trust_remote_code, "--trust-remote-code"),
            (self.disable_log_stats, "--disable-log-stats"),
            (
                self.disable_uvicorn_access_log,
                "--disable-uvicorn-access-log",
            ),
            (
                self.enable_prompt_tokens_details,
                "--enable-prompt-tokens-details",
            ),
            (self.disable_fastapi_docs, "--disable-fastapi-docs"),
            (self.enable_log_requests, "--enable-log-requests"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// A `--x` / `--no-x` pair: clap has reset the earlier of the two when both were given.
/// A switch and its `--no-` twin: which one was given last, if any.
pub fn either(yes: bool, no: bool) -> Option<bool> {
    if yes {
        Some(true)
    } else if no {
        Some(false)
    } else {
        None
    }
}

fn resolve(yes: bool, no: bool, default: bool) -> bool {
    if yes {
        true
    } else if no {
        false
    } else {
        default
    }
}
