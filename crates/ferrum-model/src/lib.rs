//! Model files and architectures: checkpoint readers, configs, the shared decoder and the
//! families that map onto it.

mod arch;
mod bundle;
mod config;
mod decoder;
mod error;
mod files;
mod generation;
mod gguf_config;
pub mod weights;

pub use arch::{config_from_hf, SUPPORTED};
pub use bundle::ModelBundle;
pub use config::{Architecture, HfConfig, Llama3Scaling, ModelConfig, RopeScaling};
pub use decoder::{expected_tensors, DecoderModel, Workspace};
pub use error::{ModelError, Result};
pub use files::{FileEntry, ModelFiles, WeightFormat};
pub use generation::GenerationDefaults;
pub use gguf_config::{config_from_gguf, vocab_from_gguf};
