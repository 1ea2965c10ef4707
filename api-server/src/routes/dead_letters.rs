//! Dead letters: listing them, and handing them back to their targets.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::buses::find_bus;
use super::events::json_response;
use super::extract::{ApiJson, ApiQuery, page_limit, parse_cursor};
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;
use switchyard_core::time::format_ms;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .routes(routes!(redrive))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterParams {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]+$")]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterOut<'a> {
    id: String,
    #[schema(value_type = Object)]
    event: &'a RawValue,
    rule: &'a str,
    target: &'a str,
    attempts: u32,
    last_error: &'a str,
    at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterPage<'a> {
    dead_letters: Vec<DeadLetterOut<'a>>,
    next_cursor: Option<String>,
}

/// Deliveries given up on, newest first.
#[utoipa::path(get, path = "/v1/buses/{bus}/dead-letters", tag = "deliveries", security(("bearer" = ["read"])),
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), DeadLetterParams),
    responses((status = 200, body = DeadLetterPage), (status = 404)))]
async fn list_dead_letters(
    State(state): State<Arc<AppState>>,
    Path(bus): Path<String>,
    ApiQuery(params): ApiQuery<DeadLetterParams>,
) -> ApiResult<Response> {
    let bus = find_bus(&state, &bus)?;
    let limit = page_limit(params.limit)? as i64;
    let before = parse_cursor::<i64>(params.cursor.as_deref())?.unwrap_or(i64::MAX);
    let letters = state
        .engine
        .meta
        .list_dead_letters(&bus.settings.name, before, limit + 1)
        .await?;
    let more = letters.len() as i64 > limit;
    let shown = &letters[..letters.len().min(limit as usize)];
    let dead_letters = shown
        .iter()
        .map(|d| {
            Ok(DeadLetterOut {
                id: d.id.to_string(),
                event: serde_json::from_str(&d.event).map_err(ApiError::internal)?,
                rule: &d.rule,
                target: &d.target,
                attempts: d.attempts,
                last_error: &d.last_error,
                at: format_ms(d.at_ms),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let next_cursor = if more {
        shown.last().map(|d| d.id.to_string())
    } else {
        None
    };
    json_response(&DeadLetterPage {
        dead_letters,
        next_cursor,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveIn {
    /// Dead letters to try again.
    #[serde(default)]
    ids: Vec<String>,
    /// Try every dead letter of the bus again.
    #[serde(default)]
    all: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RedriveOut {
    /// Handed back to their targets; each leaves the list once delivered, or comes back
    /// with its new error.
    redriven: usize,
    /// Ids that are not dead letters of this bus.
    not_found: Vec<String>,
    /// Ids whose rule or target no longer exists.
    no_target: Vec<String>,
    /// With `all`: how many dead letters have no rule or target any more (they stay).
    #[serde(skip_serializing_if = "Option::is_none")]
    no_target_count: Option<usize>,
}

/// Hands dead letters back to their targets: by ids (200, once handed over), or all of
/// them (202, handed over in the background; 409 while a previous one still runs).
#[utoipa::path(post, path = "/v1/buses/{bus}/dead-letters/redrive", tag = "deliveries", request_body = RedriveIn,
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, body = RedriveOut), (status = 202, body = RedriveOut), (status = 400, description = "malformed JSON"), (status = 404), (status = 409), (status = 413), (status = 415), (status = 422)))]
async fn redrive(
    State(state): State<Arc<AppState>>,
    Path(bus): Path<String>,
    ApiJson(body): ApiJson<RedriveIn>,
) -> ApiResult<(StatusCode, axum::Json<RedriveOut>)> {
    let bus = find_bus(&state, &bus)?;
    if body.all != body.ids.is_empty() {
        return Err(ApiError::new(
            Code::InvalidField,
            "give either \"ids\" (a non-empty list) or \"all\": true",
        ));
    }
    if body.all {
        return redrive_all(&state, bus).await;
    }
    let done = state.engine.redrive(&bus, &body.ids).await?;
    Ok((
        StatusCode::OK,
        axum::Json(RedriveOut {
            redriven: done.redriven,
            not_found: done.not_found,
            no_target: done.no_target,
            no_target_count: None,
        }),
    ))
}

/// Every dead letter of the bus, handed back in the background, a page at a time: the
/// answer (202) says how many will be retried and how many have no target any more (they
/// stay dead letters). Letters written after the request are not taken.
async fn redrive_all(
    state: &Arc<AppState>,
    bus: Arc<switchyard_engine::buses::Bus>,
) -> ApiResult<(StatusCode, axum::Json<RedriveOut>)> {
    let Some(plan) = state.engine.redrive_all(bus).await? else {
        return Err(ApiError::new(
            Code::RedriveRunning,
            "a redrive of every dead letter of this bus is still running",
        ));
    };
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(RedriveOut {
            redriven: plan.redriven,
            not_found: Vec::new(),
            no_target: Vec::new(),
            no_target_count: Some(plan.orphaned),
        }),
    ))
}
