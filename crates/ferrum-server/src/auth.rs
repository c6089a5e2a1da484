//! API keys: `Authorization: Bearer <key>` on every route but `/health` (and `/metrics` when
//! allowed), unknown routes included.
//!
//! Invariants:
//! - Default deny: the check runs before routing, so a path that matches no route is a 401,
//!   not a 404 that would reveal which routes exist.
//! - Keys are compared as SHA-256 digests in constant time, against every configured key
//!   without stopping early, so timing reveals neither the key nor which key matched.
//! - The decision uses only the request's own path, never a URL rebuilt from the Host header.
//! - A refusal says `Connection: close`: the request's body is never read, so the connection
//!   cannot carry another request, and a client that pooled it (Java's HttpClient does) would
//!   send its next request into a closing socket and get no answer at all.

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONNECTION};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// The configured keys, as digests.
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    pub fn new(keys: &[String]) -> Self {
        Self {
            digests: keys.iter().map(|k| digest(k.as_bytes())).collect(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let d = digest(presented);
        let mut ok = subtle::Choice::from(0);
        for k in &self.digests {
            ok |= k.ct_eq(&d);
        }
        ok.into()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The key in `Authorization: Bearer <key>` (scheme case-insensitive, one space).
fn bearer(req: &Request) -> Option<&[u8]> {
    let value = req.headers().get(AUTHORIZATION)?.as_bytes();
    let (scheme, key) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(key)
}

pub async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.api_keys.is_enabled() {
        return next.run(req).await;
    }
    let path = req.uri().path();
    let open = path == "/health" || (path == "/metrics" && !state.options.metrics_auth);
    if open || req.method() == axum::http::Method::OPTIONS {
        return next.run(req).await;
    }
    let mut refusal = match bearer(&req) {
        Some(key) if state.api_keys.accepts(key) => return next.run(req).await,
        // Ollama's clients read `{"error": "..."}`; everyone else gets the OpenAI shape.
        _ if path.starts_with("/api/") => {
            crate::routes::ollama::reply::error(ApiError::Unauthorized)
        }
        _ => ApiError::Unauthorized.into_response(),
    };
    refusal
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    refusal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly() {
        let keys = ApiKeys::new(&["sk-one".into(), "sk-two".into()]);
        assert!(keys.accepts(b"sk-one"));
        assert!(keys.accepts(b"sk-two"));
        assert!(!keys.accepts(b"sk-One"));
        assert!(!keys.accepts(b"sk-on"));
        assert!(!keys.accepts(b""));
        assert!(!ApiKeys::new(&[]).accepts(b"x"));
    }
}
