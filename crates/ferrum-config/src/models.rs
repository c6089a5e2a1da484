//! Several models in one server: the `models:` list of the `--config` file, and the settings
//! each model ends up with ([`ModelSpec`]: its own entry over the global flags).
//!
//! Invariants:
//! - An entry is a model path, or a mapping whose keys are the long flag names of the
//!   per-model settings ([`ENTRY_KEYS`], dashes or underscores); any other key is an error that
//!   names it, the entry, and the keys allowed.
//! - A setting an entry leaves out takes the global flag's value, except the memory share: an
//!   entry without its own share gets an equal part of what the explicit shares leave
//!   (`crate::memory`).
//! - Every model answers to at least one name, and a name routes to exactly one model.

use std::path::Path;
use std::time::Duration;

use clap::ValueEnum;
use serde_json::Value;

use crate::args::{Device, ServeArgs};
use crate::error::ConfigError;
use crate::file::kind;
use crate::human::{parse_human_count, parse_keep_alive, parse_max_model_len, ContextLen};
use crate::validate::{chat_template_source, generation_config, GenerationConfig};

/// The keys a `models:` entry may have.
pub const ENTRY_KEYS: &[&str] = &[
    "model",
    "served-model-name",
    "max-model-len",
    "gpu-memory-utilization",
    "kv-cache-memory-bytes",
    "device",
    "chat-template",
    "generation-config",
    "max-num-seqs",
    "max-num-batched-tokens",
    "keep-alive",
];

/// One entry of `models:` as written (unset keys are `None`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelEntry {
    pub model: String,
    pub served_model_name: Vec<String>,
    pub max_model_len: Option<ContextLen>,
    pub gpu_memory_utilization: Option<f32>,
    pub kv_cache_memory_bytes: Option<u64>,
    pub device: Option<Device>,
    pub chat_template: Option<String>,
    pub generation_config: Option<String>,
    pub max_num_seqs: Option<usize>,
    pub max_num_batched_tokens: Option<usize>,
    pub keep_alive: Option<Duration>,
}

/// Parses the value of `models:`; the error is the file error's message.
pub fn parse_model_entries(value: &Value) -> Result<Vec<ModelEntry>, String> {
    let items = match value {
        Value::Array(items) if !items.is_empty() => items,
        Value::Array(_) => return Err("models: the list is empty".into()),
        other => {
            return Err(format!(
                "models: expects a list of models, found {}",
                kind(other)
            ))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_entry(item).map_err(|m| format!("models[{i}]: {m}")))
        .collect()
}

fn parse_entry(item: &Value) -> Result<ModelEntry, String> {
    let map = match item {
        Value::String(path) => {
            return Ok(ModelEntry {
                model: path.clone(),
                ..ModelEntry::default()
            })
        }
        Value::Object(map) => map,
        other => {
            return Err(format!(
                "expects a model path or a mapping, found {}",
                kind(other)
            ))
        }
    };
    let mut entry = ModelEntry::default();
    let mut seen: Vec<String> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for (raw, v) in map {
        let key = raw.trim_start_matches('-').replace('_', "-");
        if seen.contains(&key) {
            return Err(format!(
                "{key} is given twice (dash and underscore spellings)"
            ));
        }
        seen.push(key.clone());
        let k = key.as_str();
        match k {
            "model" => entry.model = text(k, v)?,
            "served-model-name" => entry.served_model_name = names(k, v)?,
            "max-model-len" => {
                entry.max_model_len =
                    Some(parse_max_model_len(&scalar(k, v)?).map_err(|m| format!("{k}: {m}"))?)
            }
            "gpu-memory-utilization" => {
                let s = scalar(k, v)?;
                let f: f32 = s
                    .parse()
                    .map_err(|_| format!("{k}: {s:?} is not a number"))?;
                entry.gpu_memory_utilization = Some(f);
            }
            "kv-cache-memory-bytes" => {
                entry.kv_cache_memory_bytes =
                    Some(parse_human_count(&scalar(k, v)?).map_err(|m| format!("{k}: {m}"))?)
            }
            "device" => {
                let s = text(k, v)?;
                entry.device = Some(
                    Device::from_str(&s, true)
                        .map_err(|_| format!("{k}: {s:?} is not one of auto, cpu, cuda"))?,
                );
            }
            "chat-template" => entry.chat_template = Some(text(k, v)?),
            "generation-config" => entry.generation_config = Some(text(k, v)?),
            "max-num-seqs" => entry.max_num_seqs = Some(count(k, v)?),
            "max-num-batched-tokens" => entry.max_num_batched_tokens = Some(count(k, v)?),
            "keep-alive" => {
                entry.keep_alive =
                    Some(parse_keep_alive(&scalar(k, v)?).map_err(|m| format!("{k}: {m}"))?)
            }
            _ => unknown.push(key),
        }
    }
    if !unknown.is_empty() {
        // Sorted: the map's order depends on serde_json's features.
        unknown.sort();
        return Err(format!(
            "unknown key(s) {}; a model entry takes {}",
            unknown.join(", "),
            ENTRY_KEYS.join(", ")
        ));
    }
    if entry.model.trim().is_empty() {
        return Err("`model` (a folder or .gguf file) is required".into());
    }
    Ok(entry)
}

fn scalar(key: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!(
            "{key}: expects a single value, found {}",
            kind(other)
        )),
    }
}

fn text(key: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("{key}: expects a string, found {}", kind(other))),
    }
}

fn count(key: &str, v: &Value) -> Result<usize, String> {
    let s = scalar(key, v)?;
    parse_human_count(&s)
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{key}: {s:?} is not a count"))
}

fn names(key: &str, v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items.iter().map(|i| text(key, i)).collect(),
        other => Err(format!(
            "{key}: expects a name or a list of names, found {}",
            kind(other)
        )),
    }
}

/// One model's settings, resolved: its entry over the global flags.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The model as given (folder, file or hub id).
    pub model: String,
    /// The names the API answers to; the first is reported in responses and metrics.
    pub served_model_name: Vec<String>,
    pub max_model_len: Option<ContextLen>,
    /// This model's own share of the device; `None`: an equal part of what is left.
    pub gpu_memory_utilization: Option<f32>,
    /// This model's own KV-cache size; `None`: an equal part of what is left.
    pub kv_cache_memory_bytes: Option<u64>,
    pub device: Device,
    pub chat_template: Option<String>,
    pub generation_config: String,
    pub max_num_seqs: usize,
    pub max_num_batched_tokens: usize,
    /// Unload the engine after this long without requests; `None`: always loaded.
    pub keep_alive: Option<Duration>,
}

impl ModelSpec {
    /// The first served name (the metrics label and the name in log lines).
    pub fn primary_name(&self) -> &str {
        self.served_model_name
            .first()
            .map_or(self.model.as_str(), String::as_str)
    }

    pub fn chat_template_source(&self) -> Result<Option<String>, ConfigError> {
        chat_template_source(self.chat_template.as_deref())
    }

    pub fn generation_config(&self) -> Result<GenerationConfig, ConfigError> {
        generation_config(&self.generation_config)
    }
}

/// The names a model answers to without --served-model-name: the model as given (what `vllm
/// serve` reports) and its file or folder name.
pub fn default_names(model: &str) -> Vec<String> {
    let mut names = vec![model.to_string()];
    let stem = Path::new(model.trim_end_matches('/'))
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.trim_end_matches(".gguf").to_string());
    if let Some(stem) = stem.filter(|s| !s.is_empty() && s != model) {
        names.push(stem);
    }
    names
}

impl ServeArgs {
    /// The models to serve, each with its settings resolved. With several models, names
    /// shared by two of them are dropped from the one given later when they are defaults, and
    /// are an error when given explicitly.
    pub fn model_specs(&self) -> Result<Vec<ModelSpec>, ConfigError> {
        let global = |model: &str| ModelSpec {
            model: model.to_string(),
            served_model_name: self.model.served_model_name.clone(),
            max_model_len: self.model.max_model_len,
            gpu_memory_utilization: None,
            kv_cache_memory_bytes: None,
            device: self.parallel.device,
            chat_template: self.model.chat_template.clone(),
            generation_config: self.model.generation_config.clone(),
            max_num_seqs: self.scheduler.max_num_seqs,
            max_num_batched_tokens: self.scheduler.max_num_batched_tokens,
            keep_alive: self.model.keep_alive,
        };
        let paths = self.model_paths();
        let mut specs: Vec<ModelSpec> = if !paths.is_empty() {
            if paths.len() > 1 && !self.model.served_model_name.is_empty() {
                return Err(ConfigError::invalid(
                    "--served-model-name",
                    format!(
                        "{} models are given, so it is unclear which model the names belong to; \
                         list the models under `models:` in the --config file, each with its own \
                         served-model-name",
                        paths.len()
                    ),
                ));
            }
            paths.iter().map(|p| global(p)).collect()
        } else {
            self.models
                .iter()
                .map(|e| {
                    let mut s = global(&e.model);
                    if !e.served_model_name.is_empty() {
                        s.served_model_name = e.served_model_name.clone();
                    } else if self.models.len() > 1 {
                        // Global names cannot belong to several models.
                        s.served_model_name = Vec::new();
                    }
                    s.max_model_len = e.max_model_len.or(s.max_model_len);
                    s.gpu_memory_utilization = e.gpu_memory_utilization;
                    s.kv_cache_memory_bytes = e.kv_cache_memory_bytes;
                    s.device = e.device.unwrap_or(s.device);
                    s.chat_template = e.chat_template.clone().or(s.chat_template);
                    s.generation_config =
                        e.generation_config.clone().unwrap_or(s.generation_config);
                    s.max_num_seqs = e.max_num_seqs.unwrap_or(s.max_num_seqs);
                    s.max_num_batched_tokens =
                        e.max_num_batched_tokens.unwrap_or(s.max_num_batched_tokens);
                    s.keep_alive = e.keep_alive.or(s.keep_alive);
                    s
                })
                .collect()
        };
        if specs.is_empty() {
            return Err(ConfigError::NoModel);
        }
        assign_names(&mut specs)?;
        Ok(specs)
    }
}

/// Fills in default names and checks that no name routes to two models.
fn assign_names(specs: &mut [ModelSpec]) -> Result<(), ConfigError> {
    let mut taken: Vec<(String, String)> = Vec::new(); // (name, model)
    for spec in specs.iter_mut() {
        if spec.served_model_name.is_empty() {
            let defaults: Vec<String> = default_names(&spec.model)
                .into_iter()
                .filter(|n| !taken.iter().any(|(t, _)| t == n))
                .collect();
            if defaults.is_empty() {
                return Err(ConfigError::ModelEntry {
                    model: spec.model.clone(),
                    message: "its default names are taken by another model; give it its own \
                              served-model-name"
                        .into(),
                });
            }
            spec.served_model_name = defaults;
        }
        for name in &spec.served_model_name {
            if let Some((_, other)) = taken.iter().find(|(t, _)| t == name) {
                return Err(ConfigError::ModelEntry {
                    model: spec.model.clone(),
                    message: format!(
                        "the served name {name:?} is also a name of {other}; each name must \
                         route to one model"
                    ),
                });
            }
        }
        for name in &spec.served_model_name {
            taken.push((name.clone(), spec.model.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_parse_with_both_spellings_and_human_numbers() {
        let v = json!([
            "/models/a",
            {"model": "/models/b", "served_model_name": ["b", "bee"], "max-model-len": "4k",
             "kv_cache_memory_bytes": "512M", "gpu-memory-utilization": 0.4, "device": "CPU",
             "max-num-seqs": 8, "keep_alive": "5m"}
        ]);
        let e = parse_model_entries(&v).expect("parse");
        assert_eq!(e[0].model, "/models/a");
        assert_eq!(e[0].served_model_name, Vec::<String>::new());
        assert_eq!(e[1].served_model_name, ["b", "bee"]);
        assert_eq!(e[1].max_model_len, Some(ContextLen::Tokens(4000)));
        assert_eq!(e[1].kv_cache_memory_bytes, Some(512 << 20));
        assert_eq!(e[1].gpu_memory_utilization, Some(0.4));
        assert_eq!(e[1].device, Some(Device::Cpu));
        assert_eq!(e[1].max_num_seqs, Some(8));
        assert_eq!(e[1].keep_alive, Some(Duration::from_secs(300)));
        assert_eq!(e[0].keep_alive, None);
    }

    #[test]
    fn bad_entries_say_where_and_what() {
        let cases = [
            (json!({"model": "a"}), "expects a list"),
            (json!([]), "empty"),
            (
                json!([{"model": "a", "port": 1, "tp": 2}]),
                "models[0]: unknown key(s) port, tp; a model entry takes model, served-model-name",
            ),
            (
                json!(["a", {"served-model-name": "x"}]),
                "models[1]: `model`",
            ),
            (
                json!([{"model": "a", "max_num_seqs": 1, "max-num-seqs": 2}]),
                "given twice",
            ),
            (
                json!([{"model": "a", "device": "tpu"}]),
                "\"tpu\" is not one of auto, cpu, cuda",
            ),
            (
                json!([{"model": "a", "kv-cache-memory-bytes": "lots"}]),
                "kv-cache-memory-bytes:",
            ),
            (
                json!([{"model": "a", "keep-alive": "soon"}]),
                "keep-alive: \"soon\" is not a duration",
            ),
            (
                json!([7]),
                "models[0]: expects a model path or a mapping, found a number",
            ),
        ];
        for (v, needle) in cases {
            let e = parse_model_entries(&v).expect_err("must fail");
            assert!(e.contains(needle), "{v}: {e}");
        }
    }

    #[test]
    fn names_default_to_the_model_and_its_file_name() {
        assert_eq!(
            default_names("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
            [
                "models/SmolLM2-135M-Instruct.Q4_1.gguf",
                "SmolLM2-135M-Instruct.Q4_1"
            ]
        );
        assert_eq!(default_names("qwen3"), ["qwen3"]);
    }
}
