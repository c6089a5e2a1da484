//! Ollama's native API (`/api/*` and `/`), so that Ollama clients and tools can use Ferrum in
//! place of an Ollama server.
//!
//! The routes are a second front end over the same pipeline as the OpenAI routes: the same
//! model lookup, validation, chat template, sampling parameters, engine driver and output
//! parsers. Only the wire format differs: Ollama's field names, NDJSON streams, nanosecond
//! timings and `{"error": "…"}` bodies.
//!
//! Invariants:
//! - Every error body is `{"error": message}` with the status the OpenAI routes would give
//!   (400, 404 for an unknown model, 429, 503, 500); a failure after a stream has started is
//!   its last NDJSON line, as Ollama sends it.
//! - Nothing is faked: endpoints Ferrum cannot honour (pull, create, embed …) answer 501 with
//!   the reason, and request fields that would change the output but cannot be honoured
//!   (`format`, `images`, `template`, `suffix`, `context`) are refused, never ignored.

mod body;
mod chat;
mod generate;
mod gguf;
mod models;
mod names;
mod options;
pub(crate) mod reply;
mod run;
mod stream;

use axum::routing::{delete, get, head, post};
use axum::Router;

use crate::state::AppState;

/// The Ollama routes, merged into the server's router (under the same auth and limits).
pub fn router() -> Router<AppState> {
    let mut router = Router::new()
        .route("/", get(models::root).head(models::root))
        .route("/api/chat", post(chat::chat))
        .route("/api/generate", post(generate::generate))
        .route("/api/tags", get(models::tags))
        .route("/api/ps", get(models::ps))
        .route("/api/show", post(models::show))
        .route("/api/version", get(models::version));
    for path in [
        "/api/pull",
        "/api/push",
        "/api/create",
        "/api/copy",
        "/api/embed",
        "/api/embeddings",
    ] {
        router = router.route(path, post(models::unsupported));
    }
    router
        .route("/api/delete", delete(models::unsupported))
        .route(
            "/api/blobs/{digest}",
            head(models::unsupported).post(models::unsupported),
        )
}
