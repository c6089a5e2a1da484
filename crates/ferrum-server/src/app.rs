//! The router: every route, with and without `/v1`, under the layers that apply to all of
//! them.
//!
//! Layer order, outermost first: CORS (only with --allowed-origins) → header-size limit →
//! API key → HTTP metrics → route. Auth sits above routing, so unknown paths are 401 for a
//! client without a key.

use axum::http::{HeaderValue, Method};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::auth::require_key;
use crate::error::ApiError;
use crate::middleware::{http_metrics, limit_headers};
use crate::routes::{chat, completions, info, tokenize};
use crate::state::AppState;

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
        .route("/metrics", get(info::metrics))
        .route("/ping", get(info::ping).post(info::ping))
        .fallback(info::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), http_metrics))
        .layer(from_fn_with_state(state.clone(), require_key))
        .layer(from_fn(limit_headers));
    if let Some(cors) = cors_layer(&state.options.allowed_origins) {
        router = router.layer(cors);
    }
    router.with_state(state)
}

/// CORS only when origins are configured: browsers elsewhere get no CORS headers at all.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::from(Any)
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers(Any),
    )
}
