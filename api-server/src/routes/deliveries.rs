//! Delivery records: every journal line of every delivery, searchable.

use std::sync::Arc;

use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::buses::find_bus;
use super::extract::{ApiQuery, page_limit, parse_cursor};
use crate::error::ApiResult;
use crate::state::AppState;
use switchyard_core::time::format_ms;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(search_deliveries))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliverySearch {
    /// A query over delivery records (`outcome = dead_lettered AND target = crm`).
    q: Option<String>,
    /// Oldest delivery time to include (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Newest delivery time to include (RFC 3339, exclusive).
    #[param(format = DateTime)]
    to: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]+$")]
    cursor: Option<String>,
}

/// Delivery records (every journal line of every delivery), newest first, searchable.
#[utoipa::path(get, path = "/v1/buses/{bus}/deliveries", tag = "deliveries", security(("bearer" = ["read"])),
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), DeliverySearch),
    responses((status = 200, description = "`{\"deliveries\": [...], \"next_cursor\"}`", body = Object), (status = 400), (status = 404)))]
async fn search_deliveries(
    State(state): State<Arc<AppState>>,
    Path(bus): Path<String>,
    ApiQuery(params): ApiQuery<DeliverySearch>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let bus = find_bus(&state, &bus)?;
    let limit = page_limit(params.limit)?;
    let time = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| super::extract::parse_time(name, t))
            .transpose()
    };
    let (from, to) = (time("from", &params.from)?, time("to", &params.to)?);
    let filter = match params.q.as_deref().filter(|q| !q.trim().is_empty()) {
        Some(q) => super::extract::parse_query(q)?,
        None => switchyard_event_store::Filter::All,
    };
    let filter = filter.received_within(from, to);
    let before = parse_cursor::<u64>(params.cursor.as_deref())?;
    let offsets = bus.delivery_indexer.newest(filter, before, limit).await?;
    let journal = bus.dispatch.journal.log();
    let mut deliveries = Vec::with_capacity(offsets.len());
    for &offset in &offsets {
        if let Some(r) = journal
            .read(offset, 1)
            .await?
            .pop()
            .filter(|r| r.offset == offset)
        {
            let mut v = switchyard_engine::indexer::as_delivery(&r);
            if let Some(obj) = v.as_object_mut() {
                obj.remove("stage");
                obj.insert(
                    "at".into(),
                    serde_json::Value::from(format_ms(r.received_at_ms)),
                );
            }
            deliveries.push(v);
        }
    }
    let next_cursor = (offsets.len() == limit)
        .then(|| offsets.last().map(u64::to_string))
        .flatten();
    Ok(axum::Json(
        serde_json::json!({"deliveries": deliveries, "next_cursor": next_cursor}),
    ))
}
