//! Replays: stored events of a window run through the rules again.

use std::sync::Arc;

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::buses::find_bus;
use super::extract::ApiJson;
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(start_replay, list_replays))
        .routes(routes!(get_replay))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    /// Start of the window of receive times (RFC 3339, inclusive).
    from: String,
    /// End of the window (RFC 3339, exclusive).
    to: String,
    /// Replay through this rule only; default: every current rule.
    rule: Option<String>,
}

/// Runs the stored events of a window through the current rules again; their deliveries
/// carry the extension `replayid`. Answers at once; poll the replay for progress.
#[utoipa::path(post, path = "/v1/buses/{bus}/replays", tag = "deliveries", request_body = ReplayIn,
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 202, description = "the replay's progress", body = Object), (status = 400, description = "malformed JSON"), (status = 404), (status = 413), (status = 415), (status = 422)))]
async fn start_replay(
    State(state): State<Arc<AppState>>,
    Path(bus): Path<String>,
    ApiJson(body): ApiJson<ReplayIn>,
) -> ApiResult<(
    axum::http::StatusCode,
    axum::Json<switchyard_engine::dispatch::replay::Progress>,
)> {
    let bus = find_bus(&state, &bus)?;
    let time = |name: &str, v: &str| {
        switchyard_analytics::parse_timestamp_ms(v).ok_or_else(|| {
            ApiError::new(
                Code::InvalidField,
                format!("{name} {v:?} is not an RFC 3339 timestamp"),
            )
        })
    };
    let (from, to) = (time("from", &body.from)?, time("to", &body.to)?);
    if from >= to {
        return Err(ApiError::new(Code::InvalidField, "from must be before to"));
    }
    if let Some(rule) = &body.rule
        && bus.rules().get(rule).is_none()
    {
        return Err(ApiError::not_found("rule", rule));
    }
    let progress = switchyard_engine::dispatch::replay::start(
        bus.dispatch.clone(),
        bus.rules.clone(),
        from,
        to,
        body.rule,
    )
    .await?;
    Ok((axum::http::StatusCode::ACCEPTED, axum::Json(progress)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayList {
    #[schema(value_type = Vec<Object>)]
    replays: Vec<switchyard_engine::dispatch::replay::Progress>,
}

#[utoipa::path(get, path = "/v1/buses/{bus}/replays", tag = "deliveries", security(("bearer" = ["read"])),
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$")), responses((status = 200, body = ReplayList), (status = 404)))]
async fn list_replays(
    State(state): State<Arc<AppState>>,
    Path(bus): Path<String>,
) -> ApiResult<axum::Json<ReplayList>> {
    let bus = find_bus(&state, &bus)?;
    Ok(axum::Json(ReplayList {
        replays: bus.dispatch.replays.list(),
    }))
}

#[utoipa::path(get, path = "/v1/buses/{bus}/replays/{id}", tag = "deliveries", security(("bearer" = ["read"])),
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("id" = String, Path)),
    responses((status = 200, description = "the replay's progress", body = Object), (status = 404)))]
async fn get_replay(
    State(state): State<Arc<AppState>>,
    Path((bus, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<switchyard_engine::dispatch::replay::Progress>> {
    let bus = find_bus(&state, &bus)?;
    bus.dispatch
        .replays
        .get(&id)
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("replay", &id))
}
