//! Model sources: turns a MODEL argument into a local path, downloading from the Hugging Face
//! hub (or a mirror) or ModelScope when it names a repository.
//!
//! Downloads land in each hub's own cache layout, so caches made by `huggingface_hub` or
//! `modelscope` are reused and ours are readable by them; files appear at their final path
//! only whole and verified (size and content hash); interrupted downloads resume.

mod cache;
mod download;
mod error;
mod http;
mod huggingface;
mod model_ref;
mod modelscope;
mod parallel;
mod progress;
mod selection;
mod settings;
mod store;

use std::path::PathBuf;

pub use cache::{repo_folder_name, repo_id_of_folder};
pub use error::{HubError, Result};
pub use model_ref::{ModelRef, RepoRef};
pub use progress::{human, Progress};
pub use settings::{HubConfig, Source, DEFAULT_HF_ENDPOINT, DEFAULT_MODELSCOPE_ENDPOINT};
pub use store::{list, remove, CachedModel, Removed};

/// The default branch of each source.
pub fn default_revision(source: Source) -> &'static str {
    match source {
        Source::HuggingFace => "main",
        Source::ModelScope => "master",
    }
}

/// A local path for `spec`: itself when it is a local folder or file, else the downloaded (or
/// cached) snapshot folder or GGUF file of the hub repository it names.
pub fn resolve(
    spec: &str,
    revision: Option<&str>,
    cfg: &HubConfig,
    progress: Progress,
) -> Result<PathBuf> {
    match ModelRef::parse(spec) {
        ModelRef::Local(p) => Ok(p),
        // `org/name` may also have been meant as a folder: say that none exists.
        ModelRef::Hub(r) => pull(&r, revision, cfg, progress).map_err(|e| match e {
            HubError::RepoNotFound { .. } => {
                HubError::BadModelId(format!("no local folder or file {spec} exists, and {e}"))
            }
            e => e,
        }),
    }
}

/// Downloads what `repo` needs into the cache of the configured source (nothing when it is
/// already there) and returns its path.
pub fn pull(
    repo: &RepoRef,
    revision: Option<&str>,
    cfg: &HubConfig,
    progress: Progress,
) -> Result<PathBuf> {
    let progress = if cfg.progress {
        progress
    } else {
        Progress::Quiet
    };
    let revision = revision.unwrap_or(default_revision(cfg.source));
    match cfg.source {
        Source::HuggingFace => huggingface::fetch(cfg, repo, revision, progress),
        Source::ModelScope => modelscope::fetch(cfg, repo, revision, progress),
    }
}
