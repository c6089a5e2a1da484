//! Which files make up a model: a Hugging Face snapshot folder or a single GGUF file.

use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

/// How the weights are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightFormat {
    Gguf(PathBuf),
    SafetensorsSharded,
    Safetensors,
    PytorchSharded,
    Pytorch,
    Missing,
}

/// One line of the file report.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub name: String,
    pub present: bool,
    pub required: bool,
    pub note: &'static str,
}

#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// The folder, or the GGUF file itself.
    pub path: PathBuf,
    pub weights: WeightFormat,
    entries: Vec<FileEntry>,
}

const HF_FILES: &[(&str, bool, &str)] = &[
    ("config.json", true, "architecture and shapes"),
    ("generation_config.json", false, "sampling defaults"),
    ("tokenizer.json", false, "tokenizer (or tokenizer.model)"),
    ("tokenizer.model", false, "SentencePiece tokenizer"),
    (
        "tokenizer_config.json",
        false,
        "special tokens and chat template",
    ),
    ("chat_template.jinja", false, "chat template"),
    (
        "model.safetensors.index.json",
        false,
        "sharded safetensors index",
    ),
    ("model.safetensors", false, "weights"),
    (
        "pytorch_model.bin.index.json",
        false,
        "sharded PyTorch index",
    ),
    (
        "pytorch_model.bin",
        false,
        "weights (PyTorch, read as data only)",
    ),
];

impl ModelFiles {
    pub fn discover(path: &Path) -> Result<Self> {
        if path.is_file() {
            let is_gguf = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
            if !is_gguf {
                return Err(ModelError::Files(format!(
                    "{} is a file but not a .gguf file; give a model folder or a .gguf file",
                    path.display()
                )));
            }
            return Ok(Self {
                path: path.to_path_buf(),
                weights: WeightFormat::Gguf(path.to_path_buf()),
                entries: vec![FileEntry {
                    name: path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    present: true,
                    required: true,
                    note: "GGUF: weights, config, tokenizer and chat template",
                }],
            });
        }
        if !path.is_dir() {
            return Err(ModelError::Files(format!(
                "{} does not exist (expected a model folder or a .gguf file)",
                path.display()
            )));
        }
        let has = |n: &str| path.join(n).is_file();
        // A folder holding exactly one GGUF file and no config.json is served as that file.
        if !has("config.json") {
            if let Some(g) = single_gguf(path) {
                return Self::discover(&g);
            }
        }
        let mut entries: Vec<FileEntry> = HF_FILES
            .iter()
            .map(|&(name, required, note)| FileEntry {
                name: name.into(),
                present: has(name),
                required,
                note,
            })
            .collect();
        let weights = if has("model.safetensors.index.json") {
            WeightFormat::SafetensorsSharded
        } else if has("model.safetensors") {
            WeightFormat::Safetensors
        } else if has("pytorch_model.bin.index.json") {
            WeightFormat::PytorchSharded
        } else if has("pytorch_model.bin") {
            WeightFormat::Pytorch
        } else {
            WeightFormat::Missing
        };
        if weights == WeightFormat::Missing {
            entries.push(FileEntry {
                name: "model.safetensors | model-*-of-*.safetensors | pytorch_model.bin".into(),
                present: false,
                required: true,
                note: "weights",
            });
        }
        if !has("tokenizer.json") && !has("tokenizer.model") {
            entries.push(FileEntry {
                name: "tokenizer.json | tokenizer.model".into(),
                present: false,
                required: true,
                note: "a tokenizer",
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            weights,
            entries,
        })
    }

    pub fn entries(&self) -> &[FileEntry] {
        &self.entries
    }

    pub fn is_gguf(&self) -> bool {
        matches!(self.weights, WeightFormat::Gguf(_))
    }

    /// Path of a file inside the model folder, when present.
    pub fn file(&self, name: &str) -> Option<PathBuf> {
        let p = self.path.join(name);
        (!self.is_gguf() && p.is_file()).then_some(p)
    }
}

fn single_gguf(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        })
        .collect();
    (found.len() == 1).then(|| found.remove(0))
}
