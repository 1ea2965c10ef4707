//! `/v1/buses`: create, read, list, delete.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchyard_core::Name;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::ApiJson;
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;
use switchyard_engine::buses::{Bus, DEFAULT_BUS, DEFAULT_RETENTION_HOURS};
use switchyard_engine::meta::{BusSettings, SchemaValidation};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_buses))
        .routes(routes!(put_bus, get_bus, delete_bus))
}

/// The body of `PUT /v1/buses/{bus}`; absent fields take their defaults.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusIn {
    description: Option<String>,
    /// How long events are kept (default 168), at least the dedup window (24 by default:
    /// less is refused). An event with a pending delivery is kept until it resolves.
    #[schema(minimum = 24, maximum = 87_600)]
    retention_hours: Option<u32>,
    /// `off` (default), `warn` or `enforce`.
    schema_validation: Option<SchemaValidation>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BusOut {
    name: String,
    description: Option<String>,
    retention_hours: u32,
    schema_validation: SchemaValidation,
    /// Events stored now.
    events: u64,
    first_offset: Option<u64>,
    last_offset: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BusList {
    buses: Vec<BusOut>,
}

impl From<&Bus> for BusOut {
    fn from(bus: &Bus) -> Self {
        let bounds = bus.log.bounds();
        let s = &bus.settings;
        BusOut {
            name: s.name.clone(),
            description: s.description.clone(),
            retention_hours: s.retention_hours,
            schema_validation: s.schema_validation,
            events: bounds.len(),
            first_offset: bounds.first,
            last_offset: bounds.last(),
        }
    }
}

/// Looks up a bus by the name in a URL, or answers 404.
pub fn find_bus(state: &AppState, name: &str) -> ApiResult<Arc<Bus>> {
    state
        .engine
        .buses
        .get(name)
        .ok_or_else(|| ApiError::not_found("bus", name))
}

pub fn parse_name(kind: &str, name: &str) -> ApiResult<Name> {
    Name::parse(name).map_err(|e| ApiError::new(Code::InvalidName, format!("{kind} name: {e}")))
}

#[utoipa::path(get, path = "/v1/buses", tag = "buses", security(("bearer" = ["read"])),
    responses((status = 200, body = BusList)))]
async fn list_buses(State(state): State<Arc<AppState>>) -> Json<BusList> {
    let buses = state
        .engine
        .buses
        .all()
        .iter()
        .map(|b| BusOut::from(b.as_ref()))
        .collect();
    Json(BusList { buses })
}

#[utoipa::path(put, path = "/v1/buses/{bus}", tag = "buses", request_body = Option<BusIn>,
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 201, body = BusOut), (status = 200, body = BusOut), (status = 400, description = "malformed JSON, or not a valid name"), (status = 413), (status = 415),
              (status = 422, description = "invalid settings")))]
async fn put_bus(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<BusIn>,
) -> ApiResult<(StatusCode, Json<BusOut>)> {
    let name = parse_name("bus", &name)?;
    let retention_hours = body.retention_hours.unwrap_or(DEFAULT_RETENTION_HOURS);
    // Below the dedup window, an event removed could be published again and not be a
    // duplicate.
    let min = state.engine.min_retention_hours();
    if !(min..=87_600).contains(&retention_hours) {
        return Err(ApiError::new(
            Code::InvalidField,
            format!(
                "retention_hours must be between {min} (the dedup window) and 87600, got {retention_hours}"
            ),
        ));
    }
    let settings = BusSettings {
        name: name.to_string(),
        description: body.description,
        retention_hours,
        schema_validation: body.schema_validation.unwrap_or(SchemaValidation::Off),
    };
    let (created, bus) = state.engine.put_bus(settings).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(BusOut::from(bus.as_ref()))))
}

#[utoipa::path(get, path = "/v1/buses/{bus}", tag = "buses", security(("bearer" = ["read"])),
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, body = BusOut), (status = 404)))]
async fn get_bus(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<BusOut>> {
    Ok(Json(BusOut::from(find_bus(&state, &name)?.as_ref())))
}

#[utoipa::path(delete, path = "/v1/buses/{bus}", tag = "buses",
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 204), (status = 404), (status = 409, description = "the default bus")))]
async fn delete_bus(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if name == DEFAULT_BUS {
        return Err(ApiError::new(
            Code::Conflict,
            "the default bus always exists and cannot be deleted",
        ));
    }
    if !state.engine.delete_bus(&name).await? {
        return Err(ApiError::not_found("bus", &name));
    }
    Ok(StatusCode::NO_CONTENT)
}
