//! Reader for `torch.save` checkpoints (`pytorch_model.bin`), as data only.
//!
//! Layout (PyTorch ≥ 1.6): a zip of stored entries under one top-level folder:
//! `<p>/data.pkl` (the state dict pickle, whose tensors point at storages by key),
//! `<p>/data/<key>` (raw little-endian storage bytes), `<p>/version`, `<p>/byteorder`.
//!
//! Invariants:
//! - The pickle runs on the restricted machine in `pickle/`: nothing is executed.
//! - Every tensor's view (offset, sizes, strides, in elements) is checked to lie inside its
//!   storage, and its storage inside the zip entry, before the file is accepted.
//! - Contiguous tensors are slices of the memory map; strided ones are copied into contiguous
//!   layout on request (at most the storage's size, which was bounded by the file).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ferrum_backend::HostTensor;

use super::bytes::FileBytes;
use super::error::{Result, WeightError};
use super::pickle::{unpickle, TensorRef, Value};
use super::source::{TensorInfo, WeightSource};
use super::table::not_loadable;
use super::zip::{self, ZipEntry};

const FORMAT: &str = "pytorch";

struct Entry {
    info: TensorInfo,
    /// Absolute byte offset of the storage in the file.
    storage_start: usize,
    elem: usize,
    offset: usize,
    stride: Vec<usize>,
    contiguous: bool,
}

pub struct PytorchFile {
    label: String,
    bytes: FileBytes,
    tensors: BTreeMap<String, Entry>,
    /// Tensors whose storage type we do not load: name → storage class.
    unsupported: BTreeMap<String, String>,
}

impl PytorchFile {
    pub fn open(path: &Path) -> Result<Self> {
        let label = path.display().to_string();
        Self::from_bytes(FileBytes::map(path)?, label)
    }

    pub fn from_bytes(bytes: FileBytes, label: String) -> Result<Self> {
        if !bytes.starts_with(b"PK") {
            let legacy = bytes.first() == Some(&0x80);
            return Err(WeightError::BadMagic {
                format: FORMAT,
                found: if legacy {
                    "a bare pickle (legacy torch.save format before PyTorch 1.6)".into()
                } else {
                    format!("{:02x?}", &bytes[..bytes.len().min(4)])
                },
            });
        }
        let entries = zip::entries(&bytes)?;
        let by_name: HashMap<&str, &ZipEntry> =
            entries.iter().map(|e| (e.name.as_str(), e)).collect();
        let prefix = archive_prefix(&entries)?;
        if let Some(order) = by_name.get(format!("{prefix}/byteorder").as_str()) {
            let order = order.data(&bytes)?;
            if order != b"little" {
                return Err(WeightError::header(
                    FORMAT,
                    format!("byte order {:?}", String::from_utf8_lossy(order)),
                ));
            }
        }
        let pkl = by_name
            .get(format!("{prefix}/data.pkl").as_str())
            .ok_or_else(|| WeightError::header(FORMAT, "no data.pkl"))?
            .data(&bytes)?;
        let pickle = unpickle(pkl)?;
        let Value::Dict(pairs) = pickle.get(pickle.root) else {
            return Err(WeightError::header(FORMAT, "data.pkl is not a dict"));
        };
        let mut tensors = BTreeMap::new();
        let mut unsupported = BTreeMap::new();
        for &(k, v) in pairs {
            let Value::Str(name) = pickle.get(k) else {
                return Err(WeightError::header(FORMAT, "state dict key is not a str"));
            };
            let Value::Tensor(t) = pickle.get(v) else {
                tracing::debug!(tensor = %name, "skipping non-tensor state dict entry");
                continue;
            };
            let storage = by_name
                .get(format!("{prefix}/data/{}", t.storage.key).as_str())
                .ok_or_else(|| WeightError::MissingTensor {
                    name: format!("storage {} of {name}", t.storage.key),
                    in_file: Some(label.clone()),
                })?
                .range(&bytes)?;
            let entry = check_view(name, t, storage)?;
            match t.storage.kind.dtype {
                Some(_) => tensors.insert(name.clone(), entry),
                None => {
                    let class = t.storage.kind.class.to_string();
                    unsupported.insert(name.clone(), class);
                    continue;
                }
            };
        }
        Ok(PytorchFile {
            label,
            bytes,
            tensors,
            unsupported,
        })
    }
}

/// The archive's top-level folder: the parent of the only `data.pkl` one level deep.
fn archive_prefix(entries: &[ZipEntry]) -> Result<String> {
    entries
        .iter()
        .filter_map(|e| e.name.strip_suffix("/data.pkl"))
        .find(|p| !p.is_empty() && !p.contains('/'))
        .map(str::to_string)
        .ok_or_else(|| WeightError::BadMagic {
            format: FORMAT,
            found: "a zip without <folder>/data.pkl".into(),
        })
}

/// Checks that `t` lies inside its storage (absolute byte range `storage`) and lays out how to
/// read it.
fn check_view(name: &str, t: &TensorRef, storage: std::ops::Range<usize>) -> Result<Entry> {
    let elem = t.storage.kind.elem_size;
    let bad = |reason: &str| WeightError::BadShape {
        tensor: name.to_string(),
        shape: t.shape.clone(),
        reason: reason.to_string(),
    };
    let storage_bytes = (storage.end - storage.start) as u64;
    let storage_numel = t.storage.numel;
    if storage_numel
        .checked_mul(elem)
        .is_none_or(|b| b > storage_bytes)
    {
        return Err(WeightError::OutOfBounds {
            tensor: format!("storage {} of {name}", t.storage.key),
            start: 0,
            end: storage_numel.saturating_mul(elem),
            len: storage_bytes,
        });
    }
    let numel = t
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("element count overflows"))?;
    if numel > 0 {
        // Highest element the view touches; every stride is non-negative.
        let last = t
            .shape
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |a, (&d, &s)| {
                a.checked_add((d - 1).checked_mul(s)?)
            })
            .ok_or_else(|| bad("view extent overflows"))?;
        if last >= storage_numel {
            return Err(WeightError::OutOfBounds {
                tensor: name.to_string(),
                start: t.offset.saturating_mul(elem),
                end: last.saturating_add(1).saturating_mul(elem),
                len: storage_numel.saturating_mul(elem),
            });
        }
        if numel > storage_numel {
            // A broadcast view (stride 0); copying it out could exceed the file many times.
            return Err(bad("view has more elements than its storage"));
        }
    }
    let dtype = t.storage.kind.dtype.unwrap_or(ferrum_types::DType::F32);
    // All values below were bounded by the storage size, which fits in memory.
    Ok(Entry {
        info: TensorInfo {
            dtype,
            shape: t.shape.iter().map(|&d| d as usize).collect(),
        },
        storage_start: storage.start,
        elem: elem as usize,
        // An empty view reads nothing, so its (unchecked) offset must not be used.
        offset: if numel == 0 { 0 } else { t.offset as usize },
        stride: t.stride.iter().map(|&s| s as usize).collect(),
        contiguous: numel == 0 || is_contiguous(&t.shape, &t.stride),
    })
}

/// Row-major contiguity; the stride of a dimension of size 1 does not matter.
fn is_contiguous(shape: &[u64], stride: &[u64]) -> bool {
    let mut expected = 1u64;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

impl Entry {
    fn read<'a>(&self, file: &'a [u8]) -> Cow<'a, [u8]> {
        let numel = self.info.numel();
        let base = self.storage_start + self.offset * self.elem;
        if self.contiguous {
            return Cow::Borrowed(&file[base..base + numel * self.elem]);
        }
        let mut out = Vec::with_capacity(numel * self.elem);
        let mut index = vec![0usize; self.info.shape.len()];
        for _ in 0..numel {
            let at = base
                + index
                    .iter()
                    .zip(&self.stride)
                    .map(|(i, s)| i * s)
                    .sum::<usize>()
                    * self.elem;
            out.extend_from_slice(&file[at..at + self.elem]);
            // Odometer step, innermost dimension fastest.
            for (i, &d) in index.iter_mut().zip(&self.info.shape).rev() {
                *i += 1;
                if *i < d {
                    break;
                }
                *i = 0;
            }
        }
        Cow::Owned(out)
    }
}

impl WeightSource for PytorchFile {
    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn info(&self, name: &str) -> Option<TensorInfo> {
        self.tensors.get(name).map(|e| e.info.clone())
    }

    fn tensor(&self, name: &str) -> Result<HostTensor<'_>> {
        let e = self
            .tensors
            .get(name)
            .ok_or_else(|| not_loadable(name, &self.unsupported, &self.label))?;
        Ok(HostTensor {
            dtype: e.info.dtype,
            shape: e.info.shape.clone(),
            data: e.read(&self.bytes),
        })
    }

    fn total_bytes(&self) -> u64 {
        self.tensors
            .values()
            .map(|e| (e.info.numel() * e.elem) as u64)
            .sum()
    }

    fn format(&self) -> &'static str {
        FORMAT
    }
}
