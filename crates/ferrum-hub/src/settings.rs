//! Where models come from and where they are kept, read from the environment the way
//! `huggingface_hub` and `modelscope` read it, so that one exported variable steers every tool.
//!
//! Precedence: explicit fields set by the caller > environment > defaults.

use std::path::PathBuf;

/// A model hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    HuggingFace,
    ModelScope,
}

impl Source {
    /// `huggingface`/`hf` or `modelscope`/`ms`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "huggingface" | "hf" | "hugging-face" => Some(Self::HuggingFace),
            "modelscope" | "ms" => Some(Self::ModelScope),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::HuggingFace => "huggingface",
            Self::ModelScope => "modelscope",
        }
    }
}

/// Everything a download needs besides the model id.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub source: Source,
    /// Hugging Face endpoint or mirror, without a trailing slash.
    pub hf_endpoint: String,
    pub hf_token: Option<String>,
    /// The `hub` folder holding `models--org--name` folders.
    pub hf_cache: PathBuf,
    pub modelscope_endpoint: String,
    pub modelscope_token: Option<String>,
    /// The folder holding `models/<owner>/<name>` folders.
    pub modelscope_cache: PathBuf,
    /// No network: the cache only.
    pub offline: bool,
    /// Whether progress may be drawn at all (HF_HUB_DISABLE_PROGRESS_BARS turns it off).
    pub progress: bool,
    /// A read that waits longer fails and is resumed (`HF_HUB_DOWNLOAD_TIMEOUT`, seconds).
    pub read_timeout: std::time::Duration,
    /// Files downloaded at once (shards of one model), as `huggingface_hub`'s 8 workers.
    pub workers: usize,
    /// Attempts per file before a network error is final (each resumes where the last stopped).
    pub attempts: u32,
    /// Pause before the second attempt; doubled for each later one.
    pub retry_delay: std::time::Duration,
}

pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";
pub const DEFAULT_MODELSCOPE_ENDPOINT: &str = "https://www.modelscope.cn";

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

impl HubConfig {
    /// From the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// From any variable lookup (tests pass a map instead of mutating the process environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let home = get("HOME").map(PathBuf::from).unwrap_or_default();
        let xdg_cache = get("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".cache"));
        let hf_home = get("HF_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| xdg_cache.join("huggingface"));
        let hf_cache = get("HF_HUB_CACHE")
            .or_else(|| get("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        // `huggingface-cli login` stores the token in a file; the variables win over it.
        let token_file = get("HF_TOKEN_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("token"));
        let hf_token = get("HF_TOKEN")
            .or_else(|| get("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                std::fs::read_to_string(token_file)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
            });
        let hf_endpoint = get("HF_ENDPOINT")
            .unwrap_or_else(|| DEFAULT_HF_ENDPOINT.into())
            .trim_end_matches('/')
            .to_string();
        let modelscope_endpoint = get("MODELSCOPE_ENDPOINT")
            .or_else(|| {
                get("MODELSCOPE_DOMAIN").map(|d| {
                    let scheme = get("MODELSCOPE_URL_SCHEME").unwrap_or_else(|| "https://".into());
                    format!("{scheme}{d}")
                })
            })
            .unwrap_or_else(|| DEFAULT_MODELSCOPE_ENDPOINT.into())
            .trim_end_matches('/')
            .to_string();
        let modelscope_cache = get("MODELSCOPE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| xdg_cache.join("modelscope").join("hub"));
        let use_modelscope = ["FERRUM_USE_MODELSCOPE", "VLLM_USE_MODELSCOPE"]
            .iter()
            .any(|k| get(k).is_some_and(|v| truthy(&v)));
        let source = get("FERRUM_MODEL_SOURCE")
            .and_then(|s| Source::parse(&s))
            .unwrap_or(if use_modelscope {
                Source::ModelScope
            } else {
                Source::HuggingFace
            });
        let offline = ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"]
            .iter()
            .any(|k| get(k).is_some_and(|v| truthy(&v)));
        Self {
            source,
            hf_endpoint,
            hf_token,
            hf_cache,
            modelscope_endpoint,
            modelscope_token: get("MODELSCOPE_API_TOKEN"),
            modelscope_cache,
            offline,
            progress: !get("HF_HUB_DISABLE_PROGRESS_BARS").is_some_and(|v| truthy(&v)),
            read_timeout: std::time::Duration::from_secs_f64(
                get("HF_HUB_DOWNLOAD_TIMEOUT")
                    .and_then(|t| t.parse::<f64>().ok())
                    .filter(|t| t.is_finite() && *t > 0.0)
                    .unwrap_or(60.0),
            ),
            workers: get("FERRUM_DOWNLOAD_WORKERS")
                .and_then(|w| w.parse().ok())
                .filter(|&w| w > 0)
                .unwrap_or(8),
            attempts: 5,
            retry_delay: std::time::Duration::from_millis(500),
        }
    }

    /// The endpoint of the configured source.
    pub fn endpoint(&self) -> &str {
        match self.source {
            Source::HuggingFace => &self.hf_endpoint,
            Source::ModelScope => &self.modelscope_endpoint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> HubConfig {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_follow_huggingface_hub() {
        let c = cfg(&[("HOME", "/h")]);
        assert_eq!(c.hf_cache, PathBuf::from("/h/.cache/huggingface/hub"));
        assert_eq!(c.hf_endpoint, "https://huggingface.co");
        assert_eq!(c.source, Source::HuggingFace);
        assert!(!c.offline);
        assert_eq!(
            c.modelscope_cache,
            PathBuf::from("/h/.cache/modelscope/hub")
        );
    }

    #[test]
    fn variables_override_in_huggingface_hub_order() {
        let c = cfg(&[("HOME", "/h"), ("HF_HOME", "/hf")]);
        assert_eq!(c.hf_cache, PathBuf::from("/hf/hub"));
        let c = cfg(&[
            ("HF_HOME", "/hf"),
            ("HF_HUB_CACHE", "/cache"),
            ("HF_ENDPOINT", "https://hf-mirror.com/"),
            ("HF_TOKEN", "hf_x"),
            ("HF_HUB_OFFLINE", "1"),
        ]);
        assert_eq!(c.hf_cache, PathBuf::from("/cache"));
        assert_eq!(c.hf_endpoint, "https://hf-mirror.com");
        assert_eq!(c.hf_token.as_deref(), Some("hf_x"));
        assert!(c.offline);
        assert!(!cfg(&[("HF_HUB_OFFLINE", "0")]).offline);
        let c = cfg(&[
            ("HF_HUB_DOWNLOAD_TIMEOUT", "5"),
            ("FERRUM_DOWNLOAD_WORKERS", "2"),
        ]);
        assert_eq!(c.read_timeout, std::time::Duration::from_secs(5));
        assert_eq!(c.workers, 2);
    }

    #[test]
    fn modelscope_is_chosen_by_either_variable() {
        assert_eq!(
            cfg(&[("FERRUM_USE_MODELSCOPE", "true")]).source,
            Source::ModelScope
        );
        assert_eq!(
            cfg(&[("VLLM_USE_MODELSCOPE", "True")]).source,
            Source::ModelScope
        );
        assert_eq!(
            cfg(&[("FERRUM_USE_MODELSCOPE", "false")]).source,
            Source::HuggingFace
        );
        let c = cfg(&[
            ("MODELSCOPE_DOMAIN", "ms.example"),
            ("MODELSCOPE_CACHE", "/m"),
        ]);
        assert_eq!(c.modelscope_endpoint, "https://ms.example");
        assert_eq!(c.modelscope_cache, PathBuf::from("/m"));
    }

    #[test]
    fn token_file_is_read_when_no_variable_is_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("token"), "hf_file\n").expect("write");
        let home = dir.path().to_string_lossy().into_owned();
        assert_eq!(
            cfg(&[("HF_HOME", &home)]).hf_token.as_deref(),
            Some("hf_file")
        );
        assert_eq!(
            cfg(&[("HF_HOME", &home), ("HF_TOKEN", "hf_env")])
                .hf_token
                .as_deref(),
            Some("hf_env")
        );
    }
}
