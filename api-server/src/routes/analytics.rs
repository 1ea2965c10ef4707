//! `POST /v1/buses/{bus}/analytics`: counts, group-by, time histograms and metrics over the
//! events of a time window, computed by the index (no event is loaded).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};
use switchyard_analytics::{AnalyticsRequest, Field, Metric as AMetric, Order};
use switchyard_event_store::{AggregateSpec, FieldRef, GroupResult, Metric};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::buses::find_bus;
use super::extract::read_body;
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;
use switchyard_analytics::index;
use switchyard_core::time::format_ms;

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
) -> ApiResult<Json<Value>> {
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
/// `{"series": [{"group", "points": [{"at", "count", "value"?}]}]}`. Percentiles come from a
/// sketch (relative error about 1%); counts are exact.
#[utoipa::path(post, path = "/v1/buses/{bus}/analytics", tag = "events", security(("bearer" = ["read"])),
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    request_body(content = Object, description = "the analytics request"),
    responses((status = 200, description = "rows or series", body = Object), (status = 400), (status = 404), (status = 413), (status = 422)))]
async fn analytics(
    State(state): State<Arc<AppState>>,
    Path(bus): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let bus = find_bus(&state, &bus)?;
    let body = read_body(body, 64 * 1024).await?;
    let req = AnalyticsRequest::from_json(&body)?;
    compute(bus.indexer.index.clone(), req).await
}

/// Runs a validated request on an index and shapes rows or series.
async fn compute(
    index: Arc<switchyard_event_store::EventIndex>,
    req: AnalyticsRequest,
) -> ApiResult<Json<Value>> {
    let filter = index::within(
        super::extract::query_filter(&req.query)?,
        Some(req.from_ms),
        Some(req.to_ms),
    );
    let group_by: Vec<FieldRef> = req
        .group_by
        .iter()
        .map(|f| index::field_ref(f).map_err(|m| unsupported(&format!("group_by: {m}"))))
        .collect::<ApiResult<_>>()?;
    let metric = metric(&req.metric)?;
    let spec = AggregateSpec {
        group_by,
        interval_ms: req.interval.map(|i| i.as_ms()),
        metric,
        size: req.limit.max(10),
    };
    let mut groups = tokio::task::spawn_blocking(move || index.aggregate(&filter, &spec))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            switchyard_event_store::IndexError::Unsupported(m) => unsupported(&m),
            other => ApiError::internal(other),
        })?;
    let has_metric = !matches!(req.metric, AMetric::Count);
    let rank = |g: &GroupResult| {
        if has_metric {
            g.value.unwrap_or(f64::NAN)
        } else {
            g.count as f64
        }
    };
    groups.sort_by(|a, b| {
        let (x, y) = (rank(a), rank(b));
        let ord = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
        match req.order {
            Order::Desc => ord.reverse(),
            Order::Asc => ord,
        }
    });
    groups.truncate(req.limit);
    let group_of = |g: &GroupResult| -> Map<String, Value> {
        req.group_by
            .iter()
            .zip(&g.keys)
            .map(|(f, k)| (index::field_name(f), k.clone()))
            .collect()
    };
    let with_value = |mut v: Value, value: Option<f64>| {
        if has_metric {
            v["value"] = value.map_or(Value::Null, Value::from);
        }
        v
    };
    if req.interval.is_some() {
        let series: Vec<Value> = groups
            .iter()
            .map(|g| {
                let points: Vec<Value> = g
                    .points
                    .iter()
                    .map(|p| {
                        with_value(json!({"at": format_ms(p.at_ms), "count": p.count}), p.value)
                    })
                    .collect();
                json!({"group": group_of(g), "points": points})
            })
            .collect();
        return Ok(Json(json!({ "series": series })));
    }
    let rows: Vec<Value> = groups
        .iter()
        .map(|g| with_value(json!({"group": group_of(g), "count": g.count}), g.value))
        .collect();
    Ok(Json(json!({ "rows": rows })))
}

fn metric(m: &AMetric) -> ApiResult<Metric> {
    let f =
        |field: &Field| index::field_ref(field).map_err(|m| unsupported(&format!("metric: {m}")));
    Ok(match m {
        AMetric::Count => Metric::Count,
        AMetric::Avg(field) => Metric::Avg(f(field)?),
        AMetric::Sum(field) => Metric::Sum(f(field)?),
        AMetric::Min(field) => Metric::Min(f(field)?),
        AMetric::Max(field) => Metric::Max(f(field)?),
        AMetric::Percentile { field, percent } => {
            Metric::Percentile(f(field)?, f64::from(*percent))
        }
    })
}

fn unsupported(message: &str) -> ApiError {
    ApiError::new(Code::UnsupportedQuery, message.to_owned())
}
