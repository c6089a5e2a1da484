//! Checks on the parsed settings, and the typed forms of the string-valued ones.
//!
//! Invariant: `validate()` rejects every value that would fail later in a less clear way, and
//! each message names the flag to change and what would work.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::args::ServeArgs;
use crate::error::ConfigError;
use crate::models::ModelSpec;

/// `--tool-call-parser`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolParserKind {
    /// `<tool_call>{"name": …, "arguments": …}</tool_call>` (Qwen2.5, Qwen3, Hermes).
    Hermes,
    /// A bare JSON object `{"name": …, "parameters": …}` (Llama 3.1+).
    Llama3Json,
}

impl ToolParserKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hermes" | "qwen" | "qwen3" => Some(Self::Hermes),
            "llama3_json" | "llama3-json" | "llama4_json" => Some(Self::Llama3Json),
            _ => None,
        }
    }
}

/// `--reasoning-parser`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningParserKind {
    /// `<think>…</think>`; output without `<think>` has no reasoning.
    Qwen3,
    /// Like Qwen3, but the opening `<think>` may be in the prompt: text before `</think>` is
    /// reasoning even without it.
    DeepSeekR1,
}

impl ReasoningParserKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "qwen3" => Some(Self::Qwen3),
            "deepseek_r1" | "deepseek-r1" => Some(Self::DeepSeekR1),
            _ => None,
        }
    }
}

/// `--generation-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenerationConfig {
    /// The model's own generation_config.json.
    Auto,
    /// No model defaults (vLLM's own defaults).
    Vllm,
    /// generation_config.json from this folder.
    Folder(PathBuf),
}

const LOG_LEVELS: &[&str] = &[
    "trace", "debug", "info", "warning", "warn", "error", "critical",
];
const DTYPES: &[&str] = &["auto", "float32", "float", "float16", "half", "bfloat16"];

impl ServeArgs {
    /// Checks everything that can be checked before the model is loaded.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.model_path().is_none_or(|m| m.trim().is_empty()) {
            return Err(ConfigError::NoModel);
        }
        let s = &self.server;
        if s.host.parse::<IpAddr>().is_err() && s.host != "localhost" {
            return Err(ConfigError::invalid(
                "--host",
                format!(
                    "{:?} is not an IP address (use 127.0.0.1, 0.0.0.0 or ::)",
                    s.host
                ),
            ));
        }
        check_cors(s)?;
        if s.api_key.iter().any(|k| k.trim().is_empty()) {
            return Err(ConfigError::invalid("--api-key", "a key may not be empty"));
        }
        if s.max_request_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "--max-request-body-bytes",
                "must be at least 1K",
            ));
        }
        self.tool_parser()?;
        self.reasoning_parser()?;
        if s.auto_tool_choice() && s.tool_call_parser.is_none() {
            return Err(ConfigError::invalid(
                "--enable-auto-tool-choice",
                "needs --tool-call-parser (hermes for Qwen, llama3_json for Llama 3)",
            ));
        }
        let c = &self.cache;
        if !(c.gpu_memory_utilization > 0.0 && c.gpu_memory_utilization <= 1.0) {
            return Err(ConfigError::invalid(
                "--gpu-memory-utilization",
                format!(
                    "{} is not in (0, 1]; 0.9 is usual",
                    c.gpu_memory_utilization
                ),
            ));
        }
        if !c.block_size.is_power_of_two() || c.block_size > 256 {
            return Err(ConfigError::invalid(
                "--block-size",
                format!(
                    "{} is not a power of two up to 256; 16 is usual",
                    c.block_size
                ),
            ));
        }
        if c.kv_cache_memory_bytes == Some(0) {
            return Err(ConfigError::invalid(
                "--kv-cache-memory-bytes",
                "must be above 0",
            ));
        }
        let sch = &self.scheduler;
        if sch.max_num_seqs == 0 {
            return Err(ConfigError::invalid("--max-num-seqs", "must be at least 1"));
        }
        if sch.max_num_batched_tokens == 0 {
            return Err(ConfigError::invalid(
                "--max-num-batched-tokens",
                "must be at least 1",
            ));
        }
        if sch.max_queued_requests == Some(0) {
            return Err(ConfigError::invalid(
                "--max-queued-requests",
                "must be at least 1",
            ));
        }
        let p = &self.parallel;
        if p.tensor_parallel_size != 1 {
            return Err(ConfigError::invalid(
                "--tensor-parallel-size",
                format!(
                    "{} devices asked for, but this build runs a model on one device; use 1",
                    p.tensor_parallel_size
                ),
            ));
        }
        let m = &self.model;
        if !DTYPES.contains(&m.dtype.as_str()) {
            return Err(ConfigError::invalid(
                "--dtype",
                format!("{:?} is not one of {}", m.dtype, DTYPES.join(", ")),
            ));
        }
        if m.max_logprobs > 1000 {
            return Err(ConfigError::invalid(
                "--max-logprobs",
                "must be at most 1000",
            ));
        }
        for name in &m.served_model_name {
            if name.trim().is_empty() || name.len() > 256 {
                return Err(ConfigError::invalid(
                    "--served-model-name",
                    "names must be 1 to 256 characters",
                ));
            }
        }
        let level = self.logging.log_level.to_ascii_lowercase();
        if !LOG_LEVELS.contains(&level.as_str()) {
            return Err(ConfigError::invalid(
                "--log-level",
                format!("{level:?} is not one of {}", LOG_LEVELS.join(", ")),
            ));
        }
        // Per-model settings last: a single model's are the global flags checked above.
        let specs = self.model_specs()?;
        for spec in &specs {
            check_spec(spec, specs.len() > 1)?;
        }
        Ok(())
    }

    pub fn tool_parser(&self) -> Result<Option<ToolParserKind>, ConfigError> {
        self.server
            .tool_call_parser
            .as_deref()
            .map(|s| {
                ToolParserKind::parse(s).ok_or_else(|| {
                    ConfigError::invalid(
                        "--tool-call-parser",
                        format!("{s:?} is not supported; use hermes or llama3_json"),
                    )
                })
            })
            .transpose()
    }

    pub fn reasoning_parser(&self) -> Result<Option<ReasoningParserKind>, ConfigError> {
        self.server
            .reasoning_parser
            .as_deref()
            .map(|s| {
                ReasoningParserKind::parse(s).ok_or_else(|| {
                    ConfigError::invalid(
                        "--reasoning-parser",
                        format!("{s:?} is not supported; use qwen3 or deepseek_r1"),
                    )
                })
            })
            .transpose()
    }

    pub fn generation_config(&self) -> Result<GenerationConfig, ConfigError> {
        generation_config(&self.model.generation_config)
    }

    /// The `--chat-template` text: read from the file it names, or the value itself when it
    /// is template text. A value that looks like a path but names no file is an error.
    pub fn chat_template_source(&self) -> Result<Option<String>, ConfigError> {
        chat_template_source(self.model.chat_template.as_deref())
    }

    /// The log level as `tracing` spells it.
    pub fn tracing_level(&self) -> &'static str {
        match self.logging.log_level.to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" => "debug",
            "warning" | "warn" => "warn",
            "error" | "critical" => "error",
            _ => "info",
        }
    }
}

pub(crate) fn generation_config(value: &str) -> Result<GenerationConfig, ConfigError> {
    match value {
        "auto" => Ok(GenerationConfig::Auto),
        "vllm" => Ok(GenerationConfig::Vllm),
        dir => {
            let path = PathBuf::from(dir);
            if path.join("generation_config.json").is_file() {
                Ok(GenerationConfig::Folder(path))
            } else {
                Err(ConfigError::invalid(
                    "--generation-config",
                    format!("{dir}: no generation_config.json there; use auto, vllm or a folder holding one"),
                ))
            }
        }
    }
}

pub(crate) fn chat_template_source(value: Option<&str>) -> Result<Option<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let path = Path::new(value);
    if path.is_file() {
        return std::fs::read_to_string(path).map(Some).map_err(|e| {
            ConfigError::invalid("--chat-template", format!("cannot read {value}: {e}"))
        });
    }
    let looks_like_template = value.contains("{{") || value.contains("{%") || value.contains('\n');
    if !looks_like_template {
        return Err(ConfigError::invalid(
            "--chat-template",
            format!("{value:?} is neither a file nor template text"),
        ));
    }
    Ok(Some(value.to_string()))
}

/// Checks one model's own settings (a `models:` entry over the global flags).
/// With several models, errors name the model.
fn check_spec(spec: &ModelSpec, several: bool) -> Result<(), ConfigError> {
    let wrap = |e: ConfigError| match several {
        true => ConfigError::ModelEntry {
            model: spec.model.clone(),
            message: e.to_string(),
        },
        false => e,
    };
    if spec.model.trim().is_empty() {
        return Err(ConfigError::NoModel);
    }
    if let Some(g) = spec.gpu_memory_utilization {
        if !(g > 0.0 && g <= 1.0) {
            return Err(wrap(ConfigError::invalid(
                "gpu-memory-utilization",
                format!("{g} is not in (0, 1]"),
            )));
        }
    }
    if spec.kv_cache_memory_bytes == Some(0) {
        return Err(wrap(ConfigError::invalid(
            "kv-cache-memory-bytes",
            "must be above 0",
        )));
    }
    if spec.max_num_seqs == 0 {
        return Err(wrap(ConfigError::invalid(
            "max-num-seqs",
            "must be at least 1",
        )));
    }
    if spec.max_num_batched_tokens == 0 {
        return Err(wrap(ConfigError::invalid(
            "max-num-batched-tokens",
            "must be at least 1",
        )));
    }
    for name in &spec.served_model_name {
        if name.trim().is_empty() || name.len() > 256 {
            return Err(wrap(ConfigError::invalid(
                "--served-model-name",
                "names must be 1 to 256 characters",
            )));
        }
    }
    spec.generation_config().map_err(wrap)?;
    spec.chat_template_source().map_err(wrap)?;
    Ok(())
}

/// What to do when `--device cuda` cannot start (no GPU, no driver, no access).
pub fn cuda_help() -> &'static str {
    "`nvidia-smi` must list the GPU; in Docker, give the container the GPU (`--gpus all`, or \
     the compose file's deploy.resources.reservations.devices) and use the CUDA image"
}

/// CORS values must be what a browser can send: origins as `scheme://host[:port]`, methods
/// and header names as tokens, each or `*`.
fn check_cors(s: &crate::args::ServerArgs) -> Result<(), ConfigError> {
    let token = |v: &str| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    for o in &s.allowed_origins {
        let ok = o == "*"
            || ((o.starts_with("http://") || o.starts_with("https://"))
                && !o.ends_with('/')
                && o.bytes().all(|b| b.is_ascii_graphic()));
        if !ok {
            return Err(ConfigError::invalid(
                "--allowed-origins",
                format!("{o:?} is not an origin; write it as a browser sends it, e.g. https://app.example.com or http://localhost:3000 (no path, no trailing slash), or *"),
            ));
        }
    }
    if let Some(m) = s.allowed_methods.iter().find(|m| !token(m)) {
        return Err(ConfigError::invalid(
            "--allowed-methods",
            format!("{m:?} is not an HTTP method (GET, POST, OPTIONS … or *)"),
        ));
    }
    if let Some(h) = s.allowed_headers.iter().find(|h| !token(h)) {
        return Err(ConfigError::invalid(
            "--allowed-headers",
            format!("{h:?} is not a header name (Authorization, Content-Type … or *)"),
        ));
    }
    Ok(())
}
