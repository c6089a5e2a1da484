//! What a MODEL argument names: a local folder or file, or a hub repository (optionally one
//! file in it, for GGUF repositories that hold many quantizations).
//!
//! An existing local path always wins, as in vLLM: `Qwen/Qwen3-4B` is a folder if one exists
//! under that relative path, and a hub id otherwise.

use std::path::{Path, PathBuf};

use crate::error::{HubError, Result};

/// A repository on a hub, and the one file wanted from it when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    /// `org/name`.
    pub repo_id: String,
    /// After the colon in `org/name:file.gguf`: a file name, or a quantization tag (`Q4_K_M`)
    /// matched against the repository's GGUF files.
    pub file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    Local(PathBuf),
    Hub(RepoRef),
}

impl RepoRef {
    /// `org/name` or `org/name:file`, checked against the hub's naming rules.
    pub fn parse(spec: &str) -> Result<Self> {
        let (repo, file) = match spec.split_once(':') {
            Some((r, f)) => (r, Some(f)),
            None => (spec, None),
        };
        let bad = |why: &str| {
            HubError::BadModelId(format!(
                "{spec:?} is not a hub model id ({why}); expected org/name or org/name:file.gguf"
            ))
        };
        let (org, name) = repo.split_once('/').ok_or_else(|| bad("no '/'"))?;
        for part in [org, name] {
            if part.is_empty() || part.len() > 96 {
                return Err(bad("empty or over-long part"));
            }
            if part.starts_with(['.', '-']) || part.contains("..") {
                return Err(bad("a part starts with '.' or '-' or holds '..'"));
            }
            if !part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(bad("only letters, digits, '-', '_' and '.' are allowed"));
            }
        }
        let file = match file {
            Some(f) if f.is_empty() || f.starts_with('/') || f.split('/').any(|p| p == "..") => {
                return Err(bad("the file after ':' must be a relative name"))
            }
            f => f.map(str::to_string),
        };
        Ok(Self {
            repo_id: repo.to_string(),
            file,
        })
    }

    pub fn org_and_name(&self) -> (&str, &str) {
        self.repo_id.split_once('/').unwrap_or(("", &self.repo_id))
    }

    /// The id as the user writes it.
    pub fn display(&self) -> String {
        match &self.file {
            Some(f) => format!("{}:{f}", self.repo_id),
            None => self.repo_id.clone(),
        }
    }
}

impl ModelRef {
    pub fn parse(spec: &str) -> Self {
        let path = Path::new(spec);
        let looks_local = path.exists()
            || spec.starts_with(['/', '.', '~'])
            || spec.ends_with(".gguf") && !spec.contains(':')
            || spec.contains('\\');
        if looks_local {
            return Self::Local(path.to_path_buf());
        }
        match RepoRef::parse(spec) {
            Ok(r) => Self::Hub(r),
            Err(_) => Self::Local(path.to_path_buf()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_with_and_without_a_file() {
        assert_eq!(
            ModelRef::parse("Qwen/Qwen3-4B"),
            ModelRef::Hub(RepoRef {
                repo_id: "Qwen/Qwen3-4B".into(),
                file: None
            })
        );
        assert_eq!(
            ModelRef::parse("unsloth/Qwen3-4B-GGUF:Qwen3-4B-Q4_K_M.gguf"),
            ModelRef::Hub(RepoRef {
                repo_id: "unsloth/Qwen3-4B-GGUF".into(),
                file: Some("Qwen3-4B-Q4_K_M.gguf".into())
            })
        );
    }

    #[test]
    fn paths_stay_local() {
        for s in [
            "/models/qwen",
            "./qwen",
            "models/x.gguf",
            "a/b/c",
            "qwen",
            "~/m",
        ] {
            assert!(matches!(ModelRef::parse(s), ModelRef::Local(_)), "{s}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().to_string_lossy().into_owned();
        assert_eq!(ModelRef::parse(&p), ModelRef::Local(dir.path().into()));
    }

    #[test]
    fn malformed_ids_are_refused_with_the_expected_form() {
        for s in [
            "org/",
            "/name",
            "org/na me",
            "org/..x",
            "org/x:",
            "org/x:../etc",
        ] {
            let e = RepoRef::parse(s).expect_err(s).to_string();
            assert!(e.contains("expected org/name"), "{e}");
        }
    }
}
