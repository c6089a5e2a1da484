//! Configuration of Ferrum: the flags of `ferrum serve` (vLLM's names), read from the command
//! line, the environment and a `--config` file, then checked.
//!
//! Invariants:
//! - Precedence is command line > environment > config file > defaults, for every setting.
//! - Nothing here loads a model or opens a socket: values are parsed and checked for what can
//!   be known without the model; checks that need the model (context length against the
//!   model's own) happen where the model is loaded.

mod args;
mod error;
mod file;
mod human;
mod layers;
mod memory;
mod models;
mod reference;
mod validate;

pub use args::{
    either, CacheArgs, CompatArgs, Device, LogFormat, LoggingArgs, ModelArgs, ParallelArgs,
    SchedulerArgs, SchedulingPolicy, ServeArgs, ServerArgs,
};
pub use error::ConfigError;
pub use file::{read_config_file, FileEntry};
pub use human::{parse_human_count, parse_keep_alive, parse_max_model_len, ContextLen};
pub use layers::{load_from, ENV_HELP};
pub use memory::MemoryShare;
pub use models::{default_names, parse_model_entries, ModelEntry, ModelSpec, ENTRY_KEYS};
pub use reference::configuration_reference;
pub use validate::{cuda_help, GenerationConfig, ReasoningParserKind, ToolParserKind};

impl ServeArgs {
    /// Parses the process's own environment and `argv` (`argv[0]` the program name).
    pub fn load<I, T>(argv: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString>,
    {
        load_from(argv, &|name| std::env::var(name).ok())
    }
}
