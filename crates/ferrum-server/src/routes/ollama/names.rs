//! Model names as Ollama clients write them: `name[:tag]`, where a missing tag means `latest`.
//!
//! Invariants:
//! - A served name without a tag answers to `name` and `name:latest`; a served name with a tag
//!   answers to exactly that. Listings show every name with its tag, as Ollama does.
//! - Lookups go through the server's model registry; only the spelling is handled here. An
//!   unknown name is a 404 whose message starts as Ollama's (`model 'x' not found`).

use crate::error::ApiError;
use crate::registry::ServedModel;
use crate::state::AppState;

const LATEST: &str = ":latest";

/// Whether the last path segment of `name` carries a `:tag`.
fn has_tag(name: &str) -> bool {
    name.rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'))
}

/// `name` as listed: with its tag, `:latest` when it has none.
pub fn tagged(name: &str) -> String {
    if has_tag(name) {
        name.to_string()
    } else {
        format!("{name}{LATEST}")
    }
}

/// The model `requested` names. `model` is required, as in Ollama.
pub fn resolve<'a>(
    state: &'a AppState,
    requested: Option<&str>,
) -> Result<&'a ServedModel, ApiError> {
    let name = match requested.map(str::trim) {
        Some(n) if !n.is_empty() => n,
        _ => return Err(ApiError::invalid("model", "model is required")),
    };
    let mut candidates = vec![name.to_string()];
    match name.strip_suffix(LATEST) {
        Some(bare) => candidates.push(bare.to_string()),
        None if !has_tag(name) => candidates.push(format!("{name}{LATEST}")),
        None => {}
    }
    for c in &candidates {
        if let Ok((m, _)) = state.resolve_model(Some(c)) {
            return Ok(m);
        }
    }
    Err(ApiError::ModelNotFound {
        model: name.to_string(),
        available: state
            .models
            .iter()
            .flat_map(|m| m.route.names.iter().map(|n| tagged(n)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_default_to_latest() {
        assert_eq!(tagged("smollm2"), "smollm2:latest");
        assert_eq!(tagged("qwen3:4b"), "qwen3:4b");
        assert_eq!(tagged("hf.co/org/repo"), "hf.co/org/repo:latest");
        assert_eq!(
            tagged("localhost:8080/org/m"),
            "localhost:8080/org/m:latest"
        );
    }
}
