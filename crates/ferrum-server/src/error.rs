//! The crate's one error type and the only place where errors become HTTP statuses.
//!
//! Invariants:
//! - Every error response has OpenAI's shape `{"error": {"message", "type", "param", "code"}}`
//!   with all four keys present (`param`/`code` may be null).
//! - Client mistakes are 4xx, never 5xx: SDKs retry 5xx (and 429), so a 5xx for a bad request
//!   would be sent again and again.
//! - 429 and 503 carry `Retry-After`, which the OpenAI SDKs honour.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Seconds a client should wait before retrying a 429 or 503.
const RETRY_AFTER_SECONDS: u64 = 1;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// A request field is missing, has the wrong type or is out of range.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    /// prompt + max_tokens exceeds the context; the message gives the numbers.
    #[error("{message}")]
    ContextLength {
        message: String,
        param: &'static str,
    },
    /// A feature the request asks for that this server refuses rather than ignores.
    #[error("{message}")]
    Unsupported { message: String, param: String },
    /// The chat template refused the conversation or failed on it.
    #[error("{0}")]
    Template(String),
    /// The request's `model` names none of the served models; `available` lists their names.
    #[error("The model `{model}` does not exist. Available models: {}", available.join(", "))]
    ModelNotFound {
        model: String,
        available: Vec<String>,
    },
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("method {0} is not allowed on this route")]
    MethodNotAllowed(String),
    #[error("missing or invalid API key; send `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("request headers exceed {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("Content-Type must be application/json, not {0}")]
    UnsupportedMediaType(String),
    /// The bound on queued requests is reached.
    #[error("the server is at capacity ({0} requests queued); retry shortly")]
    Overloaded(usize),
    /// Loading, draining or not ready: a retry later may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The engine failed; the request cannot complete.
    #[error("the engine failed: {0}")]
    Engine(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    /// A request-level problem that no single field is to blame for.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: None,
        }
    }

    pub fn unsupported(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Unsupported {
            message: message.into(),
            param: param.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. }
            | Self::ContextLength { .. }
            | Self::Unsupported { .. }
            | Self::Template(_) => StatusCode::BAD_REQUEST,
            Self::ModelNotFound { .. } | Self::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Engine(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's `type` string.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unauthorized => "authentication_error",
            Self::ModelNotFound { .. } | Self::RouteNotFound { .. } => "not_found_error",
            Self::Overloaded(_) => "rate_limit_error",
            Self::Unavailable(_) => "unavailable_error",
            Self::Engine(_) | Self::Internal(_) => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// OpenAI's `code` string, where one applies.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::ContextLength { .. } => Some("context_length_exceeded"),
            Self::ModelNotFound { .. } => Some("model_not_found"),
            Self::Unauthorized => Some("invalid_api_key"),
            Self::Overloaded(_) => Some("rate_limit_exceeded"),
            Self::Unsupported { .. } => Some("unsupported_parameter"),
            _ => None,
        }
    }

    pub fn param(&self) -> Option<&str> {
        match self {
            Self::InvalidRequest { param, .. } => param.as_deref(),
            Self::ContextLength { param, .. } => Some(param),
            Self::Unsupported { param, .. } => Some(param),
            Self::ModelNotFound { .. } => Some("model"),
            Self::Template(_) => Some("messages"),
            _ => None,
        }
    }

    /// The JSON body (also sent as a mid-stream SSE error event).
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.to_string(),
                "type": self.kind(),
                "param": self.param(),
                "code": self.code(),
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        if matches!(self, Self::Overloaded(_) | Self::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_four_keys() {
        let errors = [
            ApiError::invalid("temperature", "too hot"),
            ApiError::ModelNotFound {
                model: "x".into(),
                available: vec!["y".into()],
            },
            ApiError::Unauthorized,
            ApiError::Overloaded(3),
            ApiError::Engine("boom".into()),
        ];
        for e in errors {
            let body = e.body();
            let obj = body["error"].as_object().expect("object");
            for key in ["message", "type", "param", "code"] {
                assert!(obj.contains_key(key), "{key} missing in {body}");
            }
        }
    }

    #[test]
    fn client_mistakes_are_4xx_and_retryable_ones_say_when() {
        assert_eq!(
            ApiError::invalid("n", "x").status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::ModelNotFound {
                model: "m".into(),
                available: Vec::new(),
            }
            .status(),
            StatusCode::NOT_FOUND
        );
        let r = ApiError::Overloaded(1).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers().contains_key(header::RETRY_AFTER));
        let r = ApiError::Unavailable("loading".into()).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().contains_key(header::RETRY_AFTER));
    }
}
