//! Request bodies: size-capped, JSON only, a JSON object at the top.
//!
//! Invariants:
//! - No more than `--max-request-body-bytes` is ever read (413 beyond it), whether or not the
//!   client sent `Content-Length`.
//! - A body that is not JSON, or JSON that is not an object (`[]`, `42`, `"x"`), is a 400
//!   that says so; a `Content-Type` other than JSON is a 415. A missing `Content-Type` is
//!   accepted (some clients omit it).
//! - Parsing is bounded: serde_json refuses nesting deeper than 128 levels.

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderMap;
use serde_json::Value;

use crate::error::ApiError;

/// Reads and parses a JSON-object body.
pub async fn json_object(headers: &HeaderMap, body: Body, limit: u64) -> Result<Value, ApiError> {
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !essence.is_empty() && !essence.ends_with("json") {
            return Err(ApiError::UnsupportedMediaType(essence.to_string()));
        }
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let bytes = axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "the request body must be a JSON object, not {}",
            match value {
                Value::Array(_) => "a list",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        )));
    }
    Ok(value)
}
