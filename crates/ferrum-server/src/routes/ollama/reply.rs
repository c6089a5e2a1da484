//! Ollama's wire details: `{"error": …}` bodies, RFC 3339 timestamps with nanoseconds, and
//! NDJSON bodies.
//!
//! Invariant: the error message is the one the OpenAI routes give, with the OpenAI parameter
//! names that Ollama spells differently renamed (`max_tokens` → `num_predict` …), so that the
//! message names what the client sent.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::{json, Value};

use crate::error::ApiError;

/// OpenAI parameter names in messages, and what Ollama clients call them.
const RENAMES: &[(&str, &str)] = &[
    ("max_tokens", "num_predict"),
    ("repetition_penalty", "repeat_penalty"),
];

/// The message of `e` in Ollama's vocabulary.
pub fn message(e: &ApiError) -> String {
    if let ApiError::ModelNotFound { model, available } = e {
        return format!(
            "model '{model}' not found; this server serves {}",
            available.join(", ")
        );
    }
    let mut text = e.to_string();
    for (openai, ollama) in RENAMES {
        text = text.replace(openai, ollama);
    }
    text
}

/// `{"error": message}` as one NDJSON line or body.
pub fn error_body(e: &ApiError) -> Value {
    json!({ "error": message(e) })
}

/// An error response: the crate's status for `e`, Ollama's body.
pub fn error(e: ApiError) -> Response {
    let mut response = e.clone().into_response();
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    let mut r = (status, axum::Json(error_body(&e))).into_response();
    if let Some(retry) = headers.get(axum::http::header::RETRY_AFTER) {
        r.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, retry.clone());
    }
    r
}

/// 501 for an endpoint this server cannot honour, with the reason.
pub fn not_implemented(message: String) -> Response {
    (
        StatusCode::NOT_IMPLEMENTED,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

/// A streamed body of JSON lines (`application/x-ndjson`).
pub fn ndjson(
    lines: impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static,
) -> Response {
    let mut r = Body::from_stream(lines).into_response();
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    r
}

/// One NDJSON line.
pub fn line(v: &Value) -> Bytes {
    let mut text = v.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// Now, as Ollama's `created_at`.
pub fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs(), d.subsec_nanos())
}

/// Unix time as RFC 3339 in UTC with nanoseconds (`2024-05-01T12:00:00.000000001Z`).
pub fn rfc3339(secs: u64, nanos: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29 (a leap day of a century leap year) 12:34:56.
        assert_eq!(rfc3339(951_827_696, 7), "2000-02-29T12:34:56.000000007Z");
        assert_eq!(rfc3339(1_735_689_599, 0), "2024-12-31T23:59:59.000000000Z");
    }

    #[test]
    fn messages_use_ollama_names() {
        let e = ApiError::invalid("max_tokens", "`max_tokens` must be between 1 and 9, got 0");
        assert_eq!(
            error_body(&e)["error"],
            "`num_predict` must be between 1 and 9, got 0"
        );
    }
}
