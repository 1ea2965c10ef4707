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
pub mod rules;
mod schemas;
mod testing;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use switchyard_core::ErrorKind;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::auth;
use crate::error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchyard", description = "A self-hosted event bus: CloudEvents in, rules, deliveries, search."),
    tags((name = "buses"), (name = "events"), (name = "rules"), (name = "deliveries"), (name = "schemas"), (name = "functions"), (name = "webhooks"), (name = "keys"))
)]
struct ApiDoc;

pub fn router(state: Arc<AppState>) -> Router {
    let (v1, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
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
        .split_for_parts();
    openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let openapi = Arc::new(openapi);
    let v1 = v1.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_key,
    ));
    Router::new()
        .merge(v1)
        .merge(health::router())
        .merge(console::router())
        .route(
            "/openapi.json",
            get(move || {
                let doc = openapi.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            crate::serve::BodyBounds {
                timeout: std::time::Duration::from_secs(state.config.body_timeout_seconds),
                max_body: state
                    .config
                    .max_batch_bytes
                    .max(crate::functions::MAX_MODULE_BYTES),
            },
            crate::serve::body_deadline,
        ))
        .layer(axum::middleware::from_fn(crate::serve::json_errors))
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
