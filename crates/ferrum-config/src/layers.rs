//! Where each setting comes from: command line > environment > `--config` file > defaults.
//!
//! How: the command line is parsed alone first, to learn which settings it gives. The
//! environment then contributes flags for the settings the command line leaves out, and the
//! file for those that neither gives. The three lists are joined into one argument list, which
//! clap parses into [`ServeArgs`] with its defaults filling the rest. So every value from every
//! source goes through the same clap parser and the same error messages, and no setting can
//! come from two sources at once.
//!
//! Invariants:
//! - A setting is named by its long flag ("key"); `--no-x` is the same setting as `--x`, and the
//!   positional MODEL is the same setting as `--model`.
//! - Every flag `--x-y` can come from `FERRUM_X_Y`; a few settings also answer to the names
//!   deployment guides use (`MODEL_NAME`, `MAX_MODEL_LEN`, `GPU_MEMORY_UTILIZATION`,
//!   `TENSOR_PARALLEL_SIZE`, `VLLM_API_KEY`). A `FERRUM_` variable wins over its alias. Empty
//!   variables count as unset (compose files often pass `${VAR:-}`).
//! - A file key that names no flag is an error listing every such key; `models:` (a list of
//!   models with per-model settings, `crate::models`) is the one key that is not a flag.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};
use serde_json::Value;

use crate::args::ServeArgs;
use crate::error::ConfigError;
use crate::file::{kind, read_config_file};
use crate::models::parse_model_entries;

/// Shown at the end of `ferrum serve --help`.
pub const ENV_HELP: &str = "\
Every flag can also be set in the environment as FERRUM_<FLAG> (--max-model-len: \
FERRUM_MAX_MODEL_LEN; lists comma-separated; switches true/false), and in a --config file \
(YAML or JSON, long flag names as keys). MODEL_NAME, MAX_MODEL_LEN, GPU_MEMORY_UTILIZATION, \
TENSOR_PARALLEL_SIZE and VLLM_API_KEY are read too. Precedence: command line > environment > \
config file > defaults.";

/// Environment names besides `FERRUM_<FLAG>` (deployment-guide and vLLM spellings).
const ENV_ALIASES: &[(&str, &str)] = &[
    ("model", "MODEL_NAME"),
    ("max-model-len", "MAX_MODEL_LEN"),
    ("gpu-memory-utilization", "GPU_MEMORY_UTILIZATION"),
    ("tensor-parallel-size", "TENSOR_PARALLEL_SIZE"),
    ("api-key", "VLLM_API_KEY"),
];

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `--x` (and maybe `--no-x`).
    Switch { negatable: bool },
    /// `--x VALUE`.
    Value,
    /// `--x V1 V2 …`.
    List,
}

#[derive(Debug, Clone)]
struct Flag {
    key: String,
    shape: Shape,
}

/// The settings `ferrum serve` knows, read from the clap definition itself.
fn flags() -> Vec<Flag> {
    let cmd = ServeArgs::command();
    let longs: HashSet<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    cmd.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            if matches!(long, "help" | "version") {
                return None;
            }
            if long
                .strip_prefix("no-")
                .is_some_and(|base| longs.contains(base))
            {
                return None; // the twin of a switch, reached through its base key
            }
            let shape = match a.get_action() {
                ArgAction::SetTrue => Shape::Switch {
                    negatable: longs.contains(&format!("no-{long}")),
                },
                ArgAction::Append => Shape::List,
                _ if a.get_num_args().is_some_and(|r| r.max_values() > 1) => Shape::List,
                _ => Shape::Value,
            };
            Some(Flag {
                key: long.to_string(),
                shape,
            })
        })
        .collect()
}

/// Parses `ferrum serve` arguments (`argv[0]` is the program name), reading the environment
/// through `env` and the file named by `--config` (or `FERRUM_CONFIG`).
pub fn load_from<I, T>(
    argv: I,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ServeArgs, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    if argv.is_empty() {
        argv.push("ferrum serve".into());
    }
    let cli = normalize_dashes(&argv[1..]);
    let program = argv[0].clone();

    // 1. The command line alone: which settings does it give?
    let first = ServeArgs::command()
        .try_get_matches_from(std::iter::once(program.clone()).chain(cli.iter().cloned()))
        .map_err(|e| ConfigError::Cli(Box::new(e)))?;
    let from_cli = keys_from_command_line(&first);
    let flags = flags();
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());

    // 2. The environment, for what the command line leaves out.
    let mut env_tokens = Vec::new();
    let mut from_env = HashSet::new();
    for flag in &flags {
        if from_cli.contains(&flag.key) {
            continue;
        }
        if let Some((var, value)) = env_value(&flag.key, &env) {
            env_tokens.extend(env_flag_tokens(flag, &var, &value)?);
            from_env.insert(flag.key.clone());
        }
    }

    // 3. The file, for what neither gives.
    let config_path: Option<PathBuf> = first
        .get_one::<PathBuf>("config")
        .cloned()
        .or_else(|| env("FERRUM_CONFIG").map(PathBuf::from));
    let mut file_tokens = Vec::new();
    let mut model_entries = Vec::new();
    if let Some(path) = &config_path {
        let mut entries = read_config_file(path)?;
        let file_err = |message: String| ConfigError::File {
            path: path.clone(),
            message,
        };
        // `models:` is the `model` setting for several models at once: the command line or
        // the environment naming a model overrides it, as they override `model:`.
        if let Some(i) = entries.iter().position(|e| e.key == "models") {
            let list = entries.remove(i);
            if entries.iter().any(|e| e.key == "model") {
                return Err(file_err(
                    "give either model (one model) or models (a list), not both".into(),
                ));
            }
            if !from_cli.contains("model") && !from_env.contains("model") {
                model_entries = parse_model_entries(&list.value).map_err(file_err)?;
            }
        }
        let unknown: Vec<String> = entries
            .iter()
            .filter(|e| e.key == "config" || !flags.iter().any(|f| f.key == e.key))
            .map(|e| e.key.clone())
            .collect();
        if !unknown.is_empty() {
            return Err(ConfigError::UnknownKeys {
                path: path.clone(),
                keys: unknown,
            });
        }
        for entry in entries {
            if from_cli.contains(&entry.key) || from_env.contains(&entry.key) {
                continue;
            }
            let flag = flags.iter().find(|f| f.key == entry.key).ok_or_else(|| {
                ConfigError::UnknownKeys {
                    path: path.clone(),
                    keys: vec![entry.key.clone()],
                }
            })?;
            file_tokens.extend(file_flag_tokens(flag, &entry.value).map_err(|message| {
                ConfigError::File {
                    path: path.clone(),
                    message,
                }
            })?);
        }
    }

    // 4. One parse of everything, lowest precedence first.
    let all = std::iter::once(program.clone())
        .chain(file_tokens.iter().cloned())
        .chain(env_tokens.iter().cloned())
        .chain(cli.iter().cloned());
    match ServeArgs::command().try_get_matches_from(all) {
        Ok(m) => {
            let mut args =
                ServeArgs::from_arg_matches(&m).map_err(|e| ConfigError::Cli(Box::new(e)))?;
            args.models = model_entries;
            Ok(args)
        }
        Err(e) => Err(blame(e, &program, &file_tokens, &env_tokens, config_path)),
    }
}

/// A parse error of the joined list came from the file or the environment (the command line
/// alone parsed): say which, so the user knows where to look.
fn blame(
    e: clap::Error,
    program: &OsString,
    file_tokens: &[OsString],
    env_tokens: &[OsString],
    config_path: Option<PathBuf>,
) -> ConfigError {
    let fails = |tokens: &[OsString]| {
        ServeArgs::command()
            .try_get_matches_from(std::iter::once(program.clone()).chain(tokens.iter().cloned()))
            .err()
    };
    if let (Some(err), Some(path)) = (fails(file_tokens), config_path) {
        return ConfigError::File {
            path,
            message: first_line(&err),
        };
    }
    if let Some(err) = fails(env_tokens) {
        return ConfigError::Env {
            var: "FERRUM_*".into(),
            message: first_line(&err),
        };
    }
    ConfigError::Cli(Box::new(e))
}

fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string()
}

/// `--max_model_len` is `--max-model-len`, as in vLLM (values are left alone).
fn normalize_dashes(args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest_is_values = false;
    for arg in args {
        match arg.to_str() {
            Some("--") => {
                rest_is_values = true;
                out.push(arg.clone());
            }
            Some(s) if !rest_is_values && s.starts_with("--") => {
                let (name, value) = match s.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (s, None),
                };
                let name = format!("--{}", name[2..].replace('_', "-"));
                out.push(match value {
                    Some(v) => format!("{name}={v}").into(),
                    None => name.into(),
                });
            }
            _ => out.push(arg.clone()),
        }
    }
    out
}

fn keys_from_command_line(m: &ArgMatches) -> HashSet<String> {
    let cmd = ServeArgs::command();
    let mut keys = HashSet::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if m.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let key = match arg.get_long() {
            Some(long) => long.strip_prefix("no-").unwrap_or(long).to_string(),
            None if id == "model_tag" => "model".to_string(),
            None => continue,
        };
        keys.insert(key);
    }
    keys
}

fn env_name(key: &str) -> String {
    format!("FERRUM_{}", key.to_ascii_uppercase().replace('-', "_"))
}

/// The variable that sets `key`, and its value.
fn env_value(key: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<(String, String)> {
    let primary = env_name(key);
    if let Some(v) = env(&primary) {
        return Some((primary, v));
    }
    ENV_ALIASES
        .iter()
        .filter(|(k, _)| *k == key)
        .find_map(|(_, alias)| env(alias).map(|v| (alias.to_string(), v)))
}

fn env_flag_tokens(flag: &Flag, var: &str, value: &str) -> Result<Vec<OsString>, ConfigError> {
    let env_err = |message: String| ConfigError::Env {
        var: var.to_string(),
        message,
    };
    match flag.shape {
        Shape::Switch { negatable } => {
            let on = parse_bool(value).ok_or_else(|| {
                env_err(format!(
                    "{value:?} is not a boolean (true/false, 1/0, yes/no)"
                ))
            })?;
            Ok(switch_tokens(&flag.key, on, negatable))
        }
        Shape::Value => Ok(vec![format!("--{}={}", flag.key, value.trim()).into()]),
        Shape::List => Ok(value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| format!("--{}={v}", flag.key).into())
            .collect()),
    }
}

fn file_flag_tokens(flag: &Flag, value: &Value) -> Result<Vec<OsString>, String> {
    let key = &flag.key;
    match (flag.shape, value) {
        (_, Value::Null) => Ok(Vec::new()),
        (Shape::Switch { negatable }, Value::Bool(on)) => Ok(switch_tokens(key, *on, negatable)),
        (Shape::Switch { negatable }, Value::String(s)) => match parse_bool(s) {
            Some(on) => Ok(switch_tokens(key, on, negatable)),
            None => Err(format!("{key}: {s:?} is not a boolean")),
        },
        (Shape::Switch { .. }, other) => Err(format!(
            "{key}: expects true or false, found {}",
            kind(other)
        )),
        (Shape::Value, v) => Ok(vec![format!("--{key}={}", scalar(key, v)?).into()]),
        (Shape::List, Value::Array(items)) => items
            .iter()
            .map(|v| Ok(format!("--{key}={}", scalar(key, v)?).into()))
            .collect(),
        (Shape::List, v) => Ok(vec![format!("--{key}={}", scalar(key, v)?).into()]),
    }
}

fn scalar(key: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!(
            "{key}: expects a single value, found {}",
            kind(other)
        )),
    }
}

fn switch_tokens(key: &str, on: bool, negatable: bool) -> Vec<OsString> {
    match (on, negatable) {
        (true, _) => vec![format!("--{key}").into()],
        (false, true) => vec![format!("--no-{key}").into()],
        // A switch that is off by default and has no `--no-` form: false is the default.
        (false, false) => Vec::new(),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
