//! HTTP routes: each module exports its router; they are merged here, once.

mod analytics;
pub mod buses;
mod console;
mod deliveries;
pub mod events;
pub mod extract;
mod functions;
mod health;
mod keys;
mod openapi;
pub mod rules;
mod schemas;
mod testing;
pub mod webhooks;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use switchyard_core::ErrorKind;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth;
use crate::error::ApiError;

pub fn router(state: Arc<AppState>) -> Router {
    let (routes, openapi) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(buses::router())
        .merge(events::router())
        .merge(rules::router())
        .merge(testing::router())
        .merge(deliveries::router())
        .merge(schemas::router())
        .merge(analytics::router())
        .merge(functions::router())
        .merge(webhooks::router())
        .merge(keys::router())
        // Only the routes above ask for a key: the layer wraps the routes merged so far.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .merge(health::router())
        .routes(routes!(openapi::openapi_json))
        .split_for_parts();
    let openapi = Arc::new(openapi::finish(openapi));
    Router::new()
        .merge(routes)
        .merge(console::router())
        .layer(Extension(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(plain_rejections_as_json))
        .with_state(state)
}

/// Axum's own extractors refuse in plain text (`/v1/buses/%FF`: "Invalid URL: Invalid UTF-8
/// in `bus`"); the API answers every error as `{"error": {"code", "message"}}`.
async fn plain_rejections_as_json(response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"text/plain"));
    if !status.is_client_error() || !plain {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_field",
        _ => "invalid_request",
    };
    let message = String::from_utf8_lossy(&text).trim().to_owned();
    (
        status,
        axum::Json(serde_json::json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "not_found", "no such route")
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(
            serde_json::json!({"error": {"code": "method_not_allowed", "message": "this route does not take that method"}}),
        ),
    )
}
