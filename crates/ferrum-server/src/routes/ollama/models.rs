//! Ollama's model and server information: `/`, `/api/version`, `/api/tags`, `/api/ps`,
//! `/api/show`, and the 501 for management endpoints this server cannot honour.
//!
//! Invariants:
//! - Listings answer from the model list fixed at start-up and the files on disk; they never
//!   touch an engine, so they answer at once even under load.
//! - Every served name (aliases too) is listed with its tag (`name:latest`).
//! - Facts come from the model's files (GGUF header, or config.json and the tokenizer files),
//!   read on the blocking pool; what cannot be read is left empty, never invented.
//! - `digest` is the SHA-256 of the model's source path: stable for one deployment, and not a
//!   claim about Ollama's registry manifests. `size` is the bytes of the model's files.

use std::path::Path;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::names::{resolve, tagged};
use super::reply::{error, not_implemented, rfc3339};
use crate::error::ApiError;
use crate::protocol::parse::read_fields;
use crate::registry::ServedModel;
use crate::state::AppState;

/// Seconds in 100 years: `expires_at` of a loaded model, which stays loaded until the server's
/// --keep-alive (if any) stops it.
const FOREVER_SECS: u64 = 100 * 365 * 86_400;

pub async fn root() -> &'static str {
    "Ollama is running"
}

pub async fn version() -> Response {
    axum::Json(json!({"version": env!("CARGO_PKG_VERSION")})).into_response()
}

/// What the files of a model say about it.
#[derive(Debug, Default)]
struct Facts {
    format: &'static str,
    family: String,
    parameter_size: String,
    quantization: String,
    /// The context the model was trained for (its files' value, not --max-model-len).
    trained_context: Option<u64>,
    /// The chat template in the model's files.
    template: String,
    size: u64,
}

/// [`facts`] on the blocking pool (file reads).
async fn facts_of(source: &str) -> Facts {
    let source = source.to_string();
    tokio::task::spawn_blocking(move || facts(&source))
        .await
        .unwrap_or_default()
}

fn read_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn facts(source: &str) -> Facts {
    let path = Path::new(source);
    let gguf = source.to_ascii_lowercase().ends_with(".gguf");
    let size = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    } else {
        std::fs::metadata(path).map_or(0, |m| m.len())
    };
    let mut f = Facts {
        format: if gguf { "gguf" } else { "safetensors" },
        size,
        ..Facts::default()
    };
    if gguf {
        let meta = super::gguf::read(path);
        f.family = meta
            .get("general.architecture")
            .cloned()
            .unwrap_or_default();
        f.parameter_size = meta.get("general.size_label").cloned().unwrap_or_default();
        f.trained_context = meta
            .get(&format!("{}.context_length", f.family))
            .and_then(|v| v.parse().ok());
        f.template = meta
            .get("tokenizer.chat_template")
            .cloned()
            .unwrap_or_default();
        f.quantization = quantization_of(source);
    } else {
        let config = read_json(&path.join("config.json"));
        let field = |k: &str| config.as_ref().and_then(|c| c.get(k).cloned());
        f.family = field("model_type")
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        f.trained_context = field("max_position_embeddings").and_then(|v| v.as_u64());
        f.template = std::fs::read_to_string(path.join("chat_template.jinja"))
            .ok()
            .or_else(|| {
                read_json(&path.join("tokenizer_config.json"))?
                    .get("chat_template")?
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default();
    }
    f
}

/// GGUF file names carry the quantization as their last dotted or dashed part (…Q4_K_M.gguf).
fn quantization_of(source: &str) -> String {
    let stem = source[..source.len().saturating_sub(5)]
        .rsplit('/')
        .next()
        .unwrap_or("");
    stem.rsplit(['.', '-'])
        .next()
        .filter(|q| {
            let u = q.to_ascii_uppercase();
            u.starts_with('Q') || u.starts_with("IQ") || u == "F16" || u == "BF16" || u == "F32"
        })
        .map(str::to_ascii_uppercase)
        .unwrap_or_default()
}

fn details(f: &Facts) -> Value {
    json!({
        "parent_model": "",
        "format": f.format,
        "family": f.family,
        "families": if f.family.is_empty() { Value::Null } else { json!([f.family]) },
        "parameter_size": f.parameter_size,
        "quantization_level": f.quantization,
    })
}

fn digest(source: &str) -> String {
    Sha256::digest(source.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One listing entry per name of `m`.
fn entries(state: &AppState, m: &ServedModel, f: &Facts) -> Vec<(String, Map<String, Value>)> {
    m.route
        .names
        .iter()
        .map(|n| {
            let name = tagged(n);
            let mut e = Map::new();
            e.insert("name".into(), Value::String(name.clone()));
            e.insert("model".into(), Value::String(name.clone()));
            e.insert(
                "modified_at".into(),
                Value::String(rfc3339(state.created, 0)),
            );
            e.insert("size".into(), Value::from(f.size));
            e.insert("digest".into(), Value::String(digest(&m.route.source)));
            e.insert("details".into(), details(f));
            (name, e)
        })
        .collect()
}

pub async fn tags(State(state): State<AppState>) -> Response {
    let mut models = Vec::new();
    for m in &state.models {
        let f = facts_of(&m.route.source).await;
        models.extend(
            entries(&state, m, &f)
                .into_iter()
                .map(|(_, e)| Value::Object(e)),
        );
    }
    axum::Json(json!({ "models": models })).into_response()
}

/// The models that can serve now (loaded, engine alive).
pub async fn ps(State(state): State<AppState>) -> Response {
    let expires = rfc3339(state.created + FOREVER_SECS, 0);
    let mut models = Vec::new();
    for m in state
        .models
        .iter()
        .filter(|m| m.not_ready_reason(true).is_none())
    {
        let context = m.context.get().map_or(0, |c| c.max_model_len);
        let f = facts_of(&m.route.source).await;
        for (_, mut e) in entries(&state, m, &f) {
            e.remove("modified_at");
            e.insert("expires_at".into(), Value::String(expires.clone()));
            e.insert("size_vram".into(), Value::from(0u64));
            e.insert("context_length".into(), Value::from(context));
            models.push(Value::Object(e));
        }
    }
    axum::Json(json!({ "models": models })).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ShowRequest {
    model: Option<String>,
    /// The field's name before `model`.
    name: Option<String>,
}

pub async fn show(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match show_model(state, headers, body).await {
        Ok(r) => r,
        Err(e) => error(e),
    }
}

/// The model's default sampling settings as Modelfile `PARAMETER` lines.
fn parameters(p: &ferrum_types::SamplingParams) -> String {
    let mut lines = vec![
        format!("temperature {}", p.temperature),
        format!("top_p {}", p.top_p),
    ];
    if p.top_k > 0 {
        lines.push(format!("top_k {}", p.top_k));
    }
    if p.min_p > 0.0 {
        lines.push(format!("min_p {}", p.min_p));
    }
    if p.repetition_penalty != 1.0 {
        lines.push(format!("repeat_penalty {}", p.repetition_penalty));
    }
    lines.join("\n")
}

async fn show_model(state: AppState, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let body = super::body::read(&state, &headers, body).await?;
    let req: ShowRequest = read_fields(&body)?;
    let requested = req
        .model
        .as_deref()
        .filter(|m| !m.is_empty())
        .or(req.name.as_deref());
    let served = resolve(&state, requested)?;
    let f = facts_of(&served.route.source).await;
    let context = served.context.get();
    let mut model_info = Map::new();
    if !f.family.is_empty() {
        model_info.insert(
            "general.architecture".into(),
            Value::String(f.family.clone()),
        );
        if let Some(c) = context {
            model_info.insert(
                format!("{}.context_length", f.family),
                Value::from(c.max_model_len),
            );
        }
    }
    if let Some(c) = context {
        model_info.insert("general.vocab_size".into(), Value::from(c.vocab_size));
    }
    let mut capabilities = vec!["completion"];
    if state.options.auto_tool_choice && state.options.tool_parser.is_some() {
        capabilities.push("tools");
    }
    if state.options.reasoning_parser.is_some() {
        capabilities.push("thinking");
    }
    let source = &served.route.source;
    Ok(axum::Json(json!({
        "license": "",
        "modelfile": format!("# Served by Ferrum from {source}\nFROM {source}\n"),
        "parameters": context.map(|c| parameters(&c.default_sampling)).unwrap_or_default(),
        // The Jinja template in the model's files (Ollama shows a Go template here); a
        // --chat-template given to the server replaces it when requests are rendered.
        "template": f.template,
        "details": details(&f),
        "model_info": model_info,
        "capabilities": capabilities,
        "modified_at": rfc3339(state.created, 0),
    }))
    .into_response())
}

/// Management endpoints (pull, push, create, copy, delete, blobs) and embeddings.
pub async fn unsupported(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let why = match path {
        "/api/embed" | "/api/embeddings" => "this server has no embedding models",
        _ => "models are chosen when the server starts (`ferrum pull` downloads one; `ferrum serve MODEL` serves it)",
    };
    not_implemented(format!("{method} {path} is not supported by Ferrum: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_give_format_and_quantization() {
        let f = facts("/nowhere/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert_eq!(
            (f.format, f.quantization.as_str(), f.size),
            ("gguf", "Q4_1", 0)
        );
        assert_eq!(quantization_of("/nowhere/model-q4_k_m.gguf"), "Q4_K_M");
        assert_eq!(quantization_of("/x/Model.gguf"), "");
        let f = facts("/nowhere/a-folder");
        assert_eq!((f.format, f.quantization.as_str()), ("safetensors", ""));
    }

    #[test]
    fn digests_are_sha256_hex() {
        let d = digest("x");
        assert_eq!(d.len(), 64);
        assert!(d.starts_with("2d711642"));
    }
}
