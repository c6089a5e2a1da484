//! Errors of the model sources. Every message says what to do next: a mirror for network
//! failures, a token for gated or private repositories, `ferrum pull` for offline misses.

use std::path::PathBuf;

/// What a failed download should suggest.
pub(crate) const MIRROR_HINT: &str = "check the network, or use a mirror \
(HF_ENDPOINT=https://hf-mirror.com) or ModelScope (--model-source modelscope); a proxy is read from \
HTTPS_PROXY";
pub(crate) const TOKEN_HINT: &str = "if the repository is gated or private, accept its license on \
the model page and set HF_TOKEN to an access token (https://huggingface.co/settings/tokens)";

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    BadModelId(String),

    #[error("cannot reach {url}: {reason}; {hint}")]
    Network {
        url: String,
        reason: String,
        hint: &'static str,
    },

    #[error(
        "{repo}: repository not found at {endpoint} (HTTP {status}); check the id, and {hint}"
    )]
    RepoNotFound {
        repo: String,
        endpoint: String,
        status: u16,
        hint: &'static str,
    },

    #[error("{repo}: access refused (HTTP {status}: {message}); {hint}")]
    AccessDenied {
        repo: String,
        status: u16,
        message: String,
        hint: &'static str,
    },

    #[error("{repo}: revision {revision:?} not found; give a branch, tag or commit that exists (--revision)")]
    RevisionNotFound { repo: String, revision: String },

    #[error("{repo}: file {file:?} not found at revision {revision}")]
    EntryNotFound {
        repo: String,
        revision: String,
        file: String,
    },

    #[error("HTTP {status} from {url}: {message}; {hint}")]
    Http {
        url: String,
        status: u16,
        message: String,
        hint: &'static str,
    },

    #[error("{0}")]
    BadResponse(String),

    #[error("{repo}: {what}")]
    NoServableFiles { repo: String, what: String },

    #[error(
        "{repo} (revision {revision}) is not fully in the local cache {cache} and downloads are off \
         (HF_HUB_OFFLINE=1); missing: {}; run `ferrum pull {repo}` with network access, or unset \
         HF_HUB_OFFLINE",
        missing.join(", ")
    )]
    OfflineMissing {
        repo: String,
        revision: String,
        cache: PathBuf,
        missing: Vec<String>,
    },

    #[error("{file}: downloaded {actual} bytes, the hub announced {expected}; the partial file was kept, run again to resume")]
    SizeMismatch {
        file: String,
        expected: u64,
        actual: u64,
    },

    #[error("{file}: content hash {actual} does not match the hub's {expected}; the download was discarded (a corrupting proxy or mirror?), run again")]
    HashMismatch {
        file: String,
        expected: String,
        actual: String,
    },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{file}: needs {need} more bytes but {} has only {free} free; free space there or point HF_HUB_CACHE (MODELSCOPE_CACHE) at a larger disk", dir.display())]
    NoSpace {
        file: String,
        dir: PathBuf,
        need: u64,
        free: u64,
    },

    #[error("{0} is not in the local store (see `ferrum list`)")]
    NotCached(String),
}

pub type Result<T> = std::result::Result<T, HubError>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> HubError {
    let path = path.into();
    move |source| HubError::Io { path, source }
}
