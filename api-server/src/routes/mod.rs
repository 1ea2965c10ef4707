//! HTTP routes: each module exports its router; they are merged here, once.

mod analytics;
pub mod buses;
mod console;
mod dead_letters;
mod deliveries;
pub mod events;
pub mod extract;
mod functions;
mod health;
mod keys;
mod openapi;
mod replays;
pub mod rules;
mod schemas;
mod testing;
mod trace;
pub mod webhooks;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::{Extension, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth;
use crate::error::{ApiError, Code};
use crate::state::AppState;

/// The routes that ask for an API key: the auth layer wraps exactly these.
fn keyed() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(buses::router())
        .merge(events::router())
        .merge(rules::router())
        .merge(testing::router())
        .merge(trace::router())
        .merge(replays::router())
        .merge(dead_letters::router())
        .merge(deliveries::router())
        .merge(schemas::router())
        .merge(analytics::router())
        .merge(functions::router())
        .merge(webhooks::router())
        .merge(keys::router())
}

/// The routes open to anyone: health, this document, and webhook deliveries (whose
/// credential is their signature).
fn open() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .merge(webhooks::deliveries())
        .merge(health::router())
        .routes(routes!(openapi::openapi_json))
}

/// The OpenAPI document of every route, with which need a key.
#[cfg(test)]
pub fn document() -> utoipa::openapi::OpenApi {
    openapi::finish(keyed().into_openapi(), open().into_openapi())
}

pub fn router(state: Arc<AppState>) -> Router {
    let access = Arc::new(auth::Access::from_document(&keyed().into_openapi()));
    let (keyed, keyed_doc) = keyed()
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), access),
            auth::require_key,
        ))
        .split_for_parts();
    let (open, open_doc) = open().split_for_parts();
    let openapi = Arc::new(openapi::finish(keyed_doc, open_doc));
    Router::new()
        .merge(keyed)
        .merge(open)
        .merge(console::router())
        .layer(Extension(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            crate::serve::BodyBounds {
                timeout: std::time::Duration::from_secs(state.config.body_timeout_seconds),
                max_body: state
                    .config
                    .max_batch_bytes
                    .max(switchyard_engine::functions::MAX_MODULE_BYTES),
            },
            crate::serve::body_deadline,
        ))
        .layer(axum::middleware::from_fn(crate::serve::json_errors))
}

async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no such route")
}

async fn method_not_allowed() -> impl IntoResponse {
    let status = StatusCode::METHOD_NOT_ALLOWED;
    let body = crate::error::error_body(
        crate::error::code_for(status),
        "this route does not take that method",
    );
    (status, [(CONTENT_TYPE, "application/json")], body)
}
