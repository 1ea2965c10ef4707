//! Unauthenticated operational endpoints: liveness, readiness, metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use std::sync::atomic::Ordering;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::metrics::{BusLabel, TargetLabels};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    match state.meta.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
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

async fn metrics(State(state): State<Arc<AppState>>) -> ApiResult<impl IntoResponse> {
    for bus in state.buses.all() {
        let stats = bus.log.stats();
        let label = BusLabel {
            bus: bus.settings.name.clone(),
        };
        let metrics = &state.metrics;
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
    let text = state.metrics.encode().map_err(ApiError::internal)?;
    Ok((
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}
