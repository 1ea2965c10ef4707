//! Unauthenticated operational endpoints: liveness, readiness, metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use std::sync::atomic::Ordering;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use switchyard_engine::metrics::{BusLabel, TargetLabels};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` (alive) or `ready` (storage open).
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the metadata store answers and the log backend (JetStream) is connected.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Status), (status = 503)))]
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if let Err(reason) = state.engine.buses.backend().ready() {
        tracing::warn!(reason = %reason, "the bus log backend is not ready");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"error": {"code": "unavailable", "message": "the bus log backend is not reachable"}}),
            ),
        );
    }
    match state.engine.meta.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!(Status { status: "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "metadata store is not answering");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"error": {"code": "unavailable", "message": "the metadata store is not answering"}}),
                ),
            )
        }
    }
}

/// Prometheus metrics, in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
async fn metrics(State(state): State<Arc<AppState>>) -> ApiResult<impl IntoResponse> {
    // Set afresh each time: a deleted rule, target or bus has no backlog left to show.
    state.engine.metrics.backlog.clear();
    for bus in state.engine.buses.all() {
        let stats = bus.log.stats();
        let label = BusLabel {
            bus: bus.settings.name.clone(),
        };
        let metrics = &state.engine.metrics;
        metrics
            .log_records
            .get_or_create(&label)
            .inner()
            .store(stats.records, Ordering::Relaxed);
        metrics
            .log_syncs
            .get_or_create(&label)
            .inner()
            .store(stats.syncs, Ordering::Relaxed);
        metrics
            .index_lag
            .get_or_create(&label)
            .set(i64::try_from(bus.indexer.lag()).unwrap_or(i64::MAX));
        for (rule, target, backlog) in bus.dispatch.backlog() {
            let labels = TargetLabels {
                bus: bus.settings.name.clone(),
                rule,
                target,
            };
            metrics
                .backlog
                .get_or_create(&labels)
                .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        }
    }
    let text = state.engine.metrics.encode().map_err(ApiError::internal)?;
    Ok((
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}
