//! The router: every route, with and without `/v1`, under the layers that apply to all of
//! them.
//!
//! Layer order, outermost first: CORS (only with --allowed-origins; preflights are answered
//! there, before auth, as browsers send them without credentials) → header-size limit →
//! API key → HTTP metrics → route. Auth sits above routing, so unknown paths are 401 for a
//! client without a key.

use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, Any, CorsLayer};

use crate::auth::require_key;
use crate::error::ApiError;
use crate::middleware::{http_metrics, limit_headers};
use crate::routes::{chat, completions, info, tokenize};
use crate::state::{AppState, ServerOptions};

async fn method_not_allowed(method: Method) -> Response {
    ApiError::MethodNotAllowed(method.to_string()).into_response()
}

pub fn build_router(state: AppState) -> Router {
    let mut router = Router::new();
    for prefix in ["", "/v1"] {
        router = router
            .route(
                &format!("{prefix}/chat/completions"),
                post(chat::chat_completions),
            )
            .route(
                &format!("{prefix}/completions"),
                post(completions::completions),
            )
            .route(&format!("{prefix}/models"), get(info::models))
            .route(&format!("{prefix}/models/{{id}}"), get(info::model))
            .route(&format!("{prefix}/tokenize"), post(tokenize::tokenize))
            .route(&format!("{prefix}/detokenize"), post(tokenize::detokenize))
            .route(&format!("{prefix}/health"), get(info::health))
            .route(&format!("{prefix}/version"), get(info::version));
    }
    let mut router = router
        .merge(crate::routes::ollama::router())
        .route("/metrics", get(info::metrics))
        .route("/ping", get(info::ping).post(info::ping))
        .fallback(info::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), http_metrics))
        .layer(from_fn_with_state(state.clone(), require_key))
        .layer(from_fn(limit_headers));
    if let Some(cors) = cors_layer(&state.options) {
        router = router.layer(cors);
    }
    router.with_state(state)
}

/// CORS only when origins are configured: browsers elsewhere get no CORS headers at all.
///
/// With credentials allowed, `*` is answered by mirroring the request (the origin, method or
/// headers it asks for), as Starlette does for vLLM: browsers refuse a literal `*` together
/// with credentials.
fn cors_layer(o: &ServerOptions) -> Option<CorsLayer> {
    if o.allowed_origins.is_empty() {
        return None;
    }
    let any = |v: &[String]| v.is_empty() || v.iter().any(|x| x == "*");
    let origin = if !any(&o.allowed_origins) {
        AllowOrigin::list(
            o.allowed_origins
                .iter()
                .filter_map(|x| HeaderValue::from_str(x).ok()),
        )
    } else if o.allow_credentials {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::from(Any)
    };
    let methods = if !any(&o.allowed_methods) {
        AllowMethods::list(
            o.allowed_methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok()),
        )
    } else if o.allow_credentials {
        AllowMethods::mirror_request()
    } else {
        AllowMethods::from(Any)
    };
    let headers = if !any(&o.allowed_headers) {
        AllowHeaders::list(
            o.allowed_headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok()),
        )
    } else if o.allow_credentials {
        AllowHeaders::mirror_request()
    } else {
        AllowHeaders::from(Any)
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods(methods)
            .allow_headers(headers)
            .allow_credentials(o.allow_credentials),
    )
}
