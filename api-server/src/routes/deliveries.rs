//! Where events went: the trace of one event, and the dead letters of a bus.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchyard_core::ErrorKind;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::buses::find_bus;
use super::events::{EventRecord, GetParams, json_response, lookup, to_record};
use super::extract::{ApiJson, ApiQuery, page_limit, parse_cursor};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use switchyard_core::time::format_ms;
use switchyard_engine::dispatch::journal::{Stage, TraceStep};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(start_replay, list_replays))
        .routes(routes!(get_replay))
        .routes(routes!(trace))
        .routes(routes!(search_deliveries))
        .routes(routes!(list_dead_letters))
        .routes(routes!(redrive))
}

/// One step of an event's life, with its time.
#[derive(Debug, Serialize, ToSchema)]
pub struct Step {
    at: String,
    #[serde(flatten)]
    step: TraceStep,
}

impl From<TraceStep> for Step {
    fn from(step: TraceStep) -> Step {
        Step {
            at: format_ms(step.at_ms),
            step,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Trace<'a> {
    event: EventRecord<'a>,
    timeline: Vec<Step>,
}

/// Everything that happened to one event, in time order.
#[utoipa::path(get, path = "/v1/buses/{bus}/events/{id}/trace", tag = "events",
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("id" = String, Path, example = "order-1"), GetParams),
    responses((status = 200, body = Trace), (status = 404), (status = 409)))]
async fn trace(
    State(state): State<Arc<AppState>>,
    Path((bus, id)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<GetParams>,
) -> ApiResult<Response> {
    let bus = find_bus(&state, &bus)?;
    let record = lookup(&bus, &id, params.source.as_deref()).await?;
    let entries = bus
        .dispatch
        .journal
        .entries(&record.source, &record.id, record.offset)
        .await?;
    let at = record.received_at_ms;
    let mut timeline = vec![
        TraceStep::at(at, Stage::Received),
        TraceStep {
            offset: Some(record.offset),
            ..TraceStep::at(at, Stage::Stored)
        },
    ];
    timeline.extend(record.matched_rules.iter().map(|r| TraceStep {
        rule: r.clone(),
        ..TraceStep::at(at, Stage::Matched)
    }));
    // The offset shows once, on `stored`: every journal line is about that same copy.
    timeline.extend(entries.into_iter().map(|e| TraceStep { offset: None, ..e }));
    let timeline = timeline.into_iter().map(Step::from).collect();
    json_response(&Trace {
        event: to_record(&record)?,
        timeline,
    })
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
#[utoipa::path(get, path = "/v1/buses/{bus}/dead-letters", tag = "deliveries",
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
            ErrorKind::Unprocessable,
            "invalid_field",
            "give either \"ids\" (a non-empty list) or \"all\": true",
        ));
    }
    if body.all {
        return redrive_all(&state, bus).await;
    }
    let mut not_found = Vec::new();
    let mut ids = Vec::new();
    for id in &body.ids {
        match id.parse::<i64>() {
            Ok(n) => ids.push(n),
            Err(_) => not_found.push(id.clone()),
        }
    }
    let found = state
        .engine
        .meta
        .get_dead_letters(&bus.settings.name, &ids)
        .await?;
    not_found.extend(
        ids.iter()
            .filter(|i| !found.iter().any(|d| d.id == **i))
            .map(i64::to_string),
    );
    let total = found.len();
    let no_target: Vec<String> = bus
        .dispatch
        .redrive(found)
        .await
        .iter()
        .map(i64::to_string)
        .collect();
    Ok((
        StatusCode::OK,
        axum::Json(RedriveOut {
            redriven: total - no_target.len(),
            not_found,
            no_target,
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
            ErrorKind::Conflict,
            "redrive_running",
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
                ErrorKind::Unprocessable,
                "invalid_field",
                format!("{name} {v:?} is not an RFC 3339 timestamp"),
            )
        })
    };
    let (from, to) = (time("from", &body.from)?, time("to", &body.to)?);
    if from >= to {
        return Err(ApiError::new(
            ErrorKind::Unprocessable,
            "invalid_field",
            "from must be before to",
        ));
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
    );
    Ok((axum::http::StatusCode::ACCEPTED, axum::Json(progress)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayList {
    #[schema(value_type = Vec<Object>)]
    replays: Vec<switchyard_engine::dispatch::replay::Progress>,
}

#[utoipa::path(get, path = "/v1/buses/{bus}/replays", tag = "deliveries",
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

#[utoipa::path(get, path = "/v1/buses/{bus}/replays/{id}", tag = "deliveries",
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
#[utoipa::path(get, path = "/v1/buses/{bus}/deliveries", tag = "deliveries",
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
    let filter = switchyard_analytics::index::within(filter, from, to);
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
