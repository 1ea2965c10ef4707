//! `POST /v1/buses/{bus}/analytics` (and over delivery records): counts, group-by, time
//! histograms and metrics over a time window. The body is read here; the answer is
//! `switchyard_analytics::index::run`'s, computed by the index (no event is loaded).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use serde_json::Value;
use switchyard_analytics::index;
use switchyard_analytics::{AnalyticsRequest, AnalyticsResult};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::buses::find_bus;
use super::extract::read_body;
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(analytics))
        .routes(routes!(delivery_analytics))
}

/// The same over delivery records: fields `outcome` (`attempt`, `retry_scheduled`,
/// `delivered`, `dead_lettered`, `transformed`, `schema_violation`), `rule`, `target`,
/// `status`, `latency_ms`, `attempt`, `error`, `event_id`, `event_source`. The body may
/// name a `bus` (default `default`).
#[utoipa::path(post, path = "/v1/analytics/deliveries", tag = "deliveries", security(("bearer" = ["read"])),
    request_body(content = Object, description = "the analytics request, plus an optional bus"),
    responses((status = 200, description = "rows or series", body = Object), (status = 400), (status = 404), (status = 413), (status = 422)))]
async fn delivery_analytics(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> ApiResult<Json<AnalyticsResult>> {
    let body = read_body(body, 64 * 1024).await?;
    let mut value: Value = super::extract::parse_json(&body)?;
    let bus = match value.as_object_mut().and_then(|o| o.remove("bus")) {
        None => switchyard_engine::buses::DEFAULT_BUS.to_owned(),
        Some(Value::String(b)) => b,
        Some(_) => {
            return Err(ApiError::new(Code::InvalidField, "bus must be a bus name"));
        }
    };
    let bus = find_bus(&state, &bus)?;
    let body = serde_json::to_vec(&value).map_err(ApiError::internal)?;
    let req = AnalyticsRequest::from_json(&body)?;
    compute(bus.delivery_indexer.index.clone(), req).await
}

/// `{"q", "from", "to", "group_by": [fields], "interval"?: "1m", "metric"?: "count" |
/// "avg:field" | "sum:field" | "min:field" | "max:field" | "p95:field", "order": "desc",
/// "limit"}` → `{"rows": [{"group", "count", "value"?}]}`, or with `interval`
/// `{"series": [{"group", "points": [{"at", "count", "value"?}]}]}`; `value` is left out
/// where a group has no number. Every group is ranked (400 `too_many_groups` past
/// `switchyard_analytics::index::MAX_GROUPS`). Percentiles come from a sketch (within 1% of
/// the nearest-rank value); counts are exact.
#[utoipa::path(post, path = "/v1/buses/{bus}/analytics", tag = "events", security(("bearer" = ["read"])),
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    request_body(content = Object, description = "the analytics request"),
    responses((status = 200, description = "rows or series", body = Object), (status = 400), (status = 404), (status = 413), (status = 422)))]
async fn analytics(
    State(state): State<Arc<AppState>>,
    Path(bus): Path<String>,
    body: Body,
) -> ApiResult<Json<AnalyticsResult>> {
    let bus = find_bus(&state, &bus)?;
    let body = read_body(body, 64 * 1024).await?;
    let req = AnalyticsRequest::from_json(&body)?;
    compute(bus.indexer.index.clone(), req).await
}

/// Runs a validated request on an index, off the async threads.
async fn compute(
    index: Arc<switchyard_event_store::EventIndex>,
    req: AnalyticsRequest,
) -> ApiResult<Json<AnalyticsResult>> {
    let result = tokio::task::spawn_blocking(move || index::run(&index, &req))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(result?))
}
