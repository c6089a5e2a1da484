//! Which files of a repository a model needs: the config, generation config, tokenizer files and
//! chat template, and the weights by their index, never the whole repository (which may hold
//! other formats, ONNX exports, or dozens of GGUF quantizations). Mirrors the loader's list in
//! `ferrum_model::files`.

use crate::error::{HubError, Result};
use crate::model_ref::RepoRef;

/// Small files the loader reads when present.
const SUPPORT_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

/// Weight layouts in the loader's order of preference: (index, single file).
const WEIGHTS: &[(&str, &str)] = &[
    ("model.safetensors.index.json", "model.safetensors"),
    ("pytorch_model.bin.index.json", "pytorch_model.bin"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// One GGUF file, which holds everything.
    Gguf(String),
    /// A Hugging Face folder: `files` now, then the shards `index` names once it is here.
    Folder {
        files: Vec<String>,
        index: Option<String>,
    },
}

fn is_gguf(f: &str) -> bool {
    f.to_ascii_lowercase().ends_with(".gguf")
}

/// Projector files for vision models sit beside the language model in GGUF repositories.
fn is_model_gguf(f: &str) -> bool {
    is_gguf(f) && !f.to_ascii_lowercase().contains("mmproj")
}

pub(crate) fn plan(repo: &RepoRef, listing: &[String]) -> Result<Plan> {
    let has = |f: &str| listing.iter().any(|l| l == f);
    let ggufs: Vec<&String> = listing.iter().filter(|f| is_model_gguf(f)).collect();
    let choices = || {
        ggufs
            .iter()
            .map(|g| format!("{}:{g}", repo.repo_id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(want) = &repo.file {
        if has(want) {
            return Ok(Plan::Gguf(want.clone()));
        }
        // A quantization tag (`:Q4_K_M`), as llama.cpp and Ollama accept.
        let tag = want.to_ascii_lowercase();
        let hits: Vec<&&String> = ggufs
            .iter()
            .filter(|g| !is_gguf(want) && g.to_ascii_lowercase().contains(&tag))
            .collect();
        return match hits.as_slice() {
            [one] => Ok(Plan::Gguf((**one).clone())),
            [] => Err(HubError::NoServableFiles {
                repo: repo.repo_id.clone(),
                what: format!("no file matches {want:?}; GGUF files here: {}", choices()),
            }),
            many => Err(HubError::NoServableFiles {
                repo: repo.repo_id.clone(),
                what: format!(
                    "{want:?} matches several files ({}); name one",
                    many.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        };
    }
    if has("config.json") {
        let mut files: Vec<String> = SUPPORT_FILES
            .iter()
            .filter(|f| has(f))
            .map(|f| f.to_string())
            .collect();
        for (index, single) in WEIGHTS {
            if has(index) {
                files.push(index.to_string());
                return Ok(Plan::Folder {
                    files,
                    index: Some(index.to_string()),
                });
            }
            if has(single) {
                files.push(single.to_string());
                return Ok(Plan::Folder { files, index: None });
            }
        }
    }
    match ggufs.as_slice() {
        [one] => Ok(Plan::Gguf((*one).clone())),
        [] => Err(HubError::NoServableFiles {
            repo: repo.repo_id.clone(),
            what: "holds neither config.json with model.safetensors/pytorch_model.bin weights \
                   nor a GGUF file"
                .into(),
        }),
        _ => Err(HubError::NoServableFiles {
            repo: repo.repo_id.clone(),
            what: format!("holds several GGUF files; pick one: {}", choices()),
        }),
    }
}

/// The distinct shard files a `*.index.json` maps weights to, in first-seen order.
pub(crate) fn shards(repo: &str, index: &[u8]) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let idx: Index = serde_json::from_slice(index).map_err(|e| HubError::NoServableFiles {
        repo: repo.into(),
        what: format!("its weight index is not valid JSON with a weight_map: {e}"),
    })?;
    let mut out: Vec<String> = Vec::new();
    for f in idx.weight_map.into_values() {
        if f.starts_with('/') || f.split('/').any(|p| p == "..") {
            return Err(HubError::NoServableFiles {
                repo: repo.into(),
                what: format!("its weight index names a path outside the repository: {f}"),
            });
        }
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out.sort();
    Ok(out)
}

/// Files under `dir`, relative, with `/` separators (links followed, as the loader does).
pub(crate) fn local_listing(dir: &std::path::Path) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.is_file() {
                if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The path to serve when `dir` already holds everything `repo` needs, else the names of what
/// is missing.
pub(crate) fn complete_in(
    dir: &std::path::Path,
    repo: &RepoRef,
) -> std::result::Result<std::path::PathBuf, Vec<String>> {
    let listing = local_listing(dir);
    let has = |f: &str| listing.iter().any(|l| l == f);
    match plan(repo, &listing) {
        Ok(Plan::Gguf(f)) => Ok(dir.join(f)),
        Ok(Plan::Folder { index, .. }) => {
            let mut missing = Vec::new();
            if let Some(ix) = index {
                let shards = std::fs::read(dir.join(&ix))
                    .ok()
                    .and_then(|b| shards(&repo.repo_id, &b).ok())
                    .unwrap_or_default();
                missing.extend(shards.into_iter().filter(|s| !has(s)));
            }
            if !has("tokenizer.json") && !has("tokenizer.model") {
                missing.push("tokenizer.json".into());
            }
            if missing.is_empty() {
                Ok(dir.to_path_buf())
            } else {
                Err(missing)
            }
        }
        Err(_) => Err(match &repo.file {
            Some(f) => vec![f.clone()],
            None if has("config.json") => {
                vec!["weights (model.safetensors, or an index and its shards)".into()]
            }
            None => vec!["config.json".into(), "weights".into()],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> RepoRef {
        RepoRef::parse(s).expect("id")
    }

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_sharded_repository_takes_support_files_and_the_index_only() {
        let l = list(&[
            ".gitattributes",
            "README.md",
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "onnx/model.onnx",
            "pytorch_model.bin",
        ]);
        assert_eq!(
            plan(&r("o/n"), &l).expect("plan"),
            Plan::Folder {
                files: list(&[
                    "config.json",
                    "tokenizer.json",
                    "tokenizer_config.json",
                    "model.safetensors.index.json"
                ]),
                index: Some("model.safetensors.index.json".into())
            }
        );
        let idx = br#"{"metadata":{},"weight_map":{"a":"model-00002-of-00002.safetensors","b":"model-00001-of-00002.safetensors","c":"model-00001-of-00002.safetensors"}}"#;
        assert_eq!(
            shards("o/n", idx).expect("shards"),
            list(&[
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors"
            ])
        );
        assert!(shards("o/n", br#"{"weight_map":{"a":"../x"}}"#).is_err());
    }

    #[test]
    fn gguf_repositories_need_a_choice_when_there_are_several() {
        let l = list(&[
            "README.md",
            "m-Q4_K_M.gguf",
            "m-Q8_0.gguf",
            "mmproj-f16.gguf",
        ]);
        let e = plan(&r("o/n"), &l).expect_err("ambiguous").to_string();
        assert!(
            e.contains("o/n:m-Q4_K_M.gguf") && !e.contains("mmproj"),
            "{e}"
        );
        assert_eq!(
            plan(&r("o/n:m-Q8_0.gguf"), &l).expect("file"),
            Plan::Gguf("m-Q8_0.gguf".into())
        );
        assert_eq!(
            plan(&r("o/n:q4_k_m"), &l).expect("tag"),
            Plan::Gguf("m-Q4_K_M.gguf".into())
        );
        assert!(plan(&r("o/n:Q2_K"), &l).is_err());
        assert_eq!(
            plan(&r("o/n"), &list(&["a.gguf", "mmproj.gguf"])).expect("single"),
            Plan::Gguf("a.gguf".into())
        );
        assert!(plan(&r("o/n"), &list(&["README.md"])).is_err());
    }
}
