//! Request bodies of the Ollama routes: JSON objects under the server's size cap, whatever the
//! `Content-Type`.
//!
//! Why: Ollama reads every body as JSON, and its documentation's examples are
//! `curl http://…/api/generate -d '{…}'`, which sends `application/x-www-form-urlencoded`. The
//! OpenAI routes' 415 would break those commands, so the header is not consulted here.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use serde_json::Value;

use crate::body::json_object;
use crate::error::ApiError;
use crate::state::AppState;

/// Reads the body as a JSON object (413 over the cap, 400 when it is not an object).
pub async fn read(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let mut headers = headers.clone();
    headers.remove(CONTENT_TYPE);
    json_object(&headers, body, state.options.max_body_bytes).await
}
