//! A checkpoint split over several files, described by an index such as
//! `model.safetensors.index.json` or `pytorch_model.bin.index.json`:
//! `{"metadata": {...}, "weight_map": {"tensor name": "shard file name", ...}}`.
//!
//! Invariants:
//! - Shard names are plain file names inside the index's directory (no separators, no `..`),
//!   so an index cannot make us open files elsewhere.
//! - Each shard is opened once, and every name in `weight_map` is present in its shard (checked
//!   on open, so a broken index fails at start-up rather than mid-load).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ferrum_backend::HostTensor;
use serde::Deserialize;

use super::error::{Result, WeightError};
use super::source::{TensorInfo, WeightSource};

const FORMAT: &str = "index";

/// Index files are a few hundred KB; anything far larger is not an index.
const MAX_INDEX_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Deserialize)]
struct Index {
    weight_map: BTreeMap<String, String>,
}

pub struct Sharded {
    shards: Vec<Box<dyn WeightSource>>,
    /// Tensor name → index into `shards`.
    owner: BTreeMap<String, usize>,
    format: &'static str,
}

impl Sharded {
    /// Opens the index at `index_path` and each shard it names with `open_shard`.
    pub fn open(
        index_path: &Path,
        open_shard: &dyn Fn(&Path) -> Result<Box<dyn WeightSource>>,
    ) -> Result<Self> {
        let index = read_index(index_path)?;
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let mut by_file: HashMap<&str, usize> = HashMap::new();
        let mut shards: Vec<Box<dyn WeightSource>> = Vec::new();
        let mut owner = BTreeMap::new();
        for (name, file) in &index.weight_map {
            check_file_name(file)?;
            let slot = match by_file.get(file.as_str()) {
                Some(&slot) => slot,
                None => {
                    shards.push(open_shard(&dir.join(file))?);
                    by_file.insert(file, shards.len() - 1);
                    shards.len() - 1
                }
            };
            if !shards[slot].contains(name) {
                // Present with a dtype we do not load: keep it so `tensor` says which dtype.
                if let Err(e @ WeightError::MissingTensor { .. }) = shards[slot].tensor(name) {
                    return Err(e);
                }
            }
            owner.insert(name.clone(), slot);
        }
        let format = shards.first().map_or("sharded", |s| s.format());
        Ok(Sharded {
            shards,
            owner,
            format,
        })
    }
}

fn read_index(path: &Path) -> Result<Index> {
    let len = std::fs::metadata(path)
        .map_err(|e| WeightError::io(path, e))?
        .len();
    if len > MAX_INDEX_BYTES {
        return Err(WeightError::LimitExceeded {
            format: FORMAT,
            what: format!("size of {}", path.display()),
            value: len,
            limit: MAX_INDEX_BYTES,
        });
    }
    let text = std::fs::read(path).map_err(|e| WeightError::io(path, e))?;
    serde_json::from_slice(&text)
        .map_err(|e| WeightError::header(FORMAT, format!("{}: {e}", path.display())))
}

fn check_file_name(file: &str) -> Result<()> {
    let plain = !file.is_empty()
        && file != "."
        && file != ".."
        && !file.contains(['/', '\\'])
        && !file.contains('\0');
    if plain {
        Ok(())
    } else {
        Err(WeightError::header(
            FORMAT,
            format!("shard {file:?} is not a plain file name"),
        ))
    }
}

impl WeightSource for Sharded {
    fn names(&self) -> Vec<String> {
        self.owner
            .keys()
            .filter(|n| self.contains(n))
            .cloned()
            .collect()
    }

    fn info(&self, name: &str) -> Option<TensorInfo> {
        self.shards[*self.owner.get(name)?].info(name)
    }

    fn tensor(&self, name: &str) -> Result<HostTensor<'_>> {
        match self.owner.get(name) {
            Some(&slot) => self.shards[slot].tensor(name),
            None => Err(WeightError::missing(name)),
        }
    }

    fn total_bytes(&self) -> u64 {
        self.owner
            .keys()
            .filter_map(|n| self.info(n))
            .filter_map(|i| i.byte_len().ok())
            .map(|b| b as u64)
            .sum()
    }

    fn format(&self) -> &'static str {
        self.format
    }
}
