//! The crate's one error type.
//!
//! Invariant: every message names what to change (a flag, an environment variable or a key
//! of the config file), so a failed start-up is fixed without reading the code.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line does not parse (this also carries `--help` and `--version`, which the
    /// caller prints and exits on).
    #[error("{0}")]
    Cli(Box<clap::Error>),
    #[error("cannot read the config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("config file {path}: unknown key(s) {}; keys are long flag names such as max-model-len (see ferrum serve --help)", keys.join(", "))]
    UnknownKeys { path: PathBuf, keys: Vec<String> },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    /// A setting has a value that cannot work; `flag` is the one to change.
    #[error("{flag}: {message}")]
    Invalid { flag: &'static str, message: String },
    /// A model of several has a setting that cannot work.
    #[error("model {model}: {message}")]
    ModelEntry { model: String, message: String },
    /// The models' memory shares do not fit the machine.
    #[error("memory split: {0}")]
    MemorySplit(String),
    #[error("no model given: pass MODEL (or --model), set FERRUM_MODEL or MODEL_NAME, or put `model:` in the --config file")]
    NoModel,
}

impl ConfigError {
    pub(crate) fn invalid(flag: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            flag,
            message: message.into(),
        }
    }
}
