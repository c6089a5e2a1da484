//! Checks and lookups shared by the readers that keep a name → byte-range table.
//!
//! Invariant: after [`check_overlaps`] succeeds, no two non-empty tensors share a byte, so a
//! crafted file cannot make two names alias the same data (which would hide edits to one).

use std::collections::BTreeMap;

use super::error::WeightError;

/// A tensor's byte range, relative to any common origin.
pub struct Span {
    pub name: String,
    pub start: u64,
    pub end: u64,
}

/// Fails with [`WeightError::Overlap`] when two non-empty spans intersect.
pub fn check_overlaps(mut spans: Vec<Span>) -> Result<(), WeightError> {
    spans.retain(|s| s.end > s.start);
    spans.sort_by_key(|s| (s.start, s.end));
    for pair in spans.windows(2) {
        if pair[1].start < pair[0].end {
            return Err(WeightError::Overlap {
                tensor: pair[1].name.clone(),
                other: pair[0].name.clone(),
            });
        }
    }
    Ok(())
}

/// The error for a name that is not loadable: unsupported dtype if we saw it, else missing.
pub fn not_loadable(name: &str, unsupported: &BTreeMap<String, String>, file: &str) -> WeightError {
    match unsupported.get(name) {
        Some(dtype) => WeightError::UnknownDType {
            tensor: name.to_string(),
            dtype: dtype.clone(),
        },
        None => WeightError::MissingTensor {
            name: name.to_string(),
            in_file: Some(file.to_string()),
        },
    }
}
