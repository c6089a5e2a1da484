//! The models one server serves, each with its own engine, and how a request's `model` field
//! finds its model.
//!
//! Invariants:
//! - The list is fixed at start-up; a model's [`ModelContext`] is set once, when its engine
//!   has started. Model 0 is the default: requests without `model` go to it.
//! - A served name routes to exactly one model (ferrum-config refuses duplicates).
//! - An unknown name is a 404 whose message lists every name served, so a client with a typo
//!   learns the right one from the error.

use std::sync::OnceLock;

use crate::error::ApiError;
use crate::metrics::ModelMetrics;
use crate::state::ModelContext;

/// What the HTTP layer knows about a model before it loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoute {
    /// The names the API answers to; the first is the metrics label.
    pub names: Vec<String>,
    /// Where the model came from (reported as `root` in /v1/models).
    pub source: String,
}

impl ModelRoute {
    pub fn new(names: Vec<String>, source: impl Into<String>) -> Self {
        Self {
            names,
            source: source.into(),
        }
    }

    pub fn primary_name(&self) -> &str {
        self.names
            .first()
            .map_or(self.source.as_str(), String::as_str)
    }
}

/// One served model: its names, its engine once started, its metrics.
pub struct ServedModel {
    /// Position in the server's list (vLLM's `engine` metrics label).
    pub index: usize,
    pub route: ModelRoute,
    pub context: OnceLock<ModelContext>,
    pub metrics: ModelMetrics,
}

impl ServedModel {
    pub fn new(index: usize, route: ModelRoute) -> Self {
        Self {
            index,
            metrics: ModelMetrics::new(index, route.primary_name()),
            route,
            context: OnceLock::new(),
        }
    }

    pub fn primary_name(&self) -> &str {
        self.route.primary_name()
    }

    pub fn answers_to(&self, name: &str) -> bool {
        self.route.names.iter().any(|n| n == name)
    }

    /// Why this model cannot serve now (loading or its engine died), or `None`.
    pub fn not_ready_reason(&self, several: bool) -> Option<String> {
        let model = if several {
            format!("model `{}`", self.primary_name())
        } else {
            "the model".to_string()
        };
        match self.context.get() {
            None => Some(format!("{model} is loading")),
            Some(c) => c.engine.health().err().map(|reason| match several {
                true => format!("the engine of {model} died: {reason}"),
                false => format!("the engine died: {reason}"),
            }),
        }
    }
}

/// The model a request names (absent or empty: the default), with the name it used.
pub fn resolve<'a>(
    models: &'a [ServedModel],
    requested: Option<&str>,
) -> Result<(&'a ServedModel, String), ApiError> {
    let default = models
        .first()
        .ok_or_else(|| ApiError::Internal("no model is configured".into()))?;
    match requested {
        None | Some("") => Ok((default, default.primary_name().to_string())),
        Some(name) => models
            .iter()
            .find(|m| m.answers_to(name))
            .map(|m| (m, name.to_string()))
            .ok_or_else(|| ApiError::ModelNotFound {
                model: name.to_string(),
                available: models
                    .iter()
                    .flat_map(|m| m.route.names.iter().cloned())
                    .collect(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> Vec<ServedModel> {
        vec![
            ServedModel::new(0, ModelRoute::new(vec!["a".into(), "alpha".into()], "/m/a")),
            ServedModel::new(1, ModelRoute::new(vec!["b".into()], "/m/b")),
        ]
    }

    #[test]
    fn names_and_aliases_route_and_absent_means_the_first() {
        let m = models();
        assert_eq!(resolve(&m, Some("alpha")).map(|(s, _)| s.index), Ok(0));
        assert_eq!(
            resolve(&m, Some("b")).map(|(s, n)| (s.index, n)),
            Ok((1, "b".to_string()))
        );
        assert_eq!(
            resolve(&m, None).map(|(s, n)| (s.index, n)),
            Ok((0, "a".to_string()))
        );
        assert_eq!(resolve(&m, Some("")).map(|(s, _)| s.index), Ok(0));
    }

    #[test]
    fn unknown_names_list_the_available_ones() {
        let m = models();
        let Err(e) = resolve(&m, Some("c")) else {
            panic!("c is not served");
        };
        assert_eq!(
            e.to_string(),
            "The model `c` does not exist. Available models: a, alpha, b"
        );
    }

    #[test]
    fn not_ready_reasons_name_the_model_when_there_are_several() {
        let m = models();
        assert_eq!(
            m[1].not_ready_reason(true).as_deref(),
            Some("model `b` is loading")
        );
        assert_eq!(
            m[1].not_ready_reason(false).as_deref(),
            Some("the model is loading")
        );
    }
}
