//! `/v1/schemas`: discovered and declared schemas of event data per (source, type).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiQuery};
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;
use switchyard_core::time::format_ms;
use switchyard_engine::schemas::DeclareError;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_schemas))
        .routes(routes!(get_schema, put_schema, delete_schema))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaSummary {
    source: String,
    #[serde(rename = "type")]
    ty: String,
    latest_version: u32,
    /// Whether a declared schema exists (it is what validation uses).
    explicit: bool,
    first_seen: String,
    last_seen: String,
    /// Events seen of this (source, type).
    events: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaList {
    schemas: Vec<SchemaSummary>,
}

#[utoipa::path(get, path = "/v1/schemas", tag = "schemas", security(("bearer" = ["read"])), responses((status = 200, body = SchemaList)))]
async fn list_schemas(State(state): State<Arc<AppState>>) -> Json<SchemaList> {
    let schemas = state
        .engine
        .schemas
        .list()
        .into_iter()
        .map(|s| SchemaSummary {
            source: s.source,
            ty: s.ty,
            latest_version: s.latest_version,
            explicit: s.explicit,
            first_seen: format_ms(s.first_seen_ms),
            last_seen: format_ms(s.last_seen_ms),
            events: s.events,
        })
        .collect();
    Json(SchemaList { schemas })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FormatParams {
    /// `jsonschema`: the newest schema itself; `openapi`: an OpenAPI 3.1 document with it
    /// as a component. Default: every version.
    #[param(pattern = "^(jsonschema|openapi)$")]
    format: Option<String>,
}

/// The versions of one (source, type)'s schema (source and type URL-encoded).
#[utoipa::path(get, path = "/v1/schemas/{source}/{type}", tag = "schemas", security(("bearer" = ["read"])),
    params(("source" = String, Path, example = "/shop"), ("type" = String, Path, example = "order.created"), FormatParams),
    responses((status = 200, description = "`{\"source\", \"type\", \"versions\": [{\"version\", \"schema\", \"explicit\", \"created_at\"}]}`; with `format`, the schema alone (an object, or `true`/`false`) or an OpenAPI document", body = Value), (status = 404)))]
async fn get_schema(
    State(state): State<Arc<AppState>>,
    Path((source, ty)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<FormatParams>,
) -> ApiResult<Json<Value>> {
    let versions = state
        .engine
        .schemas
        .versions(&source, &ty)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::not_found("schema", &format!("{source} {ty}")))?;
    // Declared schemas win over discovered ones.
    let current = versions
        .iter()
        .rev()
        .find(|v| v.explicit)
        .or(versions.last())
        .map(|v| v.schema.as_ref().clone())
        .unwrap_or(Value::Null);
    match params.format.as_deref() {
        None => {}
        Some("jsonschema") => return Ok(Json(current)),
        Some("openapi") => {
            let name: String = ty
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            return Ok(Json(json!({
                "openapi": "3.1.0",
                "info": {"title": format!("{ty} from {source}"), "version": versions.last().map_or(0, |v| v.version).to_string()},
                "paths": {},
                "components": {"schemas": {name: current}}
            })));
        }
        Some(other) => {
            return Err(ApiError::new(
                Code::InvalidQuery,
                format!("format {other:?} is not one of jsonschema, openapi"),
            ));
        }
    }
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({"version": v.version, "schema": v.schema.as_ref(), "explicit": v.explicit,
                   "created_at": format_ms(v.created_at_ms)})
        })
        .collect();
    Ok(Json(
        json!({"source": source, "type": ty, "versions": versions}),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaIn {
    /// A JSON Schema (draft 2020-12) of the events' `data`: an object, or `true`/`false`.
    schema: Value,
}

/// Declares the schema of a (source, type)'s data: a new version that validation uses.
#[utoipa::path(put, path = "/v1/schemas/{source}/{type}", tag = "schemas", request_body = SchemaIn,
    params(("source" = String, Path, example = "/shop"), ("type" = String, Path, example = "order.created")),
    responses((status = 201, description = "`{\"source\", \"type\", \"version\"}`", body = Object), (status = 400, description = "malformed JSON, or an empty source or type"), (status = 413), (status = 415), (status = 422, description = "not a valid JSON Schema")))]
async fn put_schema(
    State(state): State<Arc<AppState>>,
    Path((source, ty)): Path<(String, String)>,
    ApiJson(body): ApiJson<SchemaIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if source.is_empty() || ty.is_empty() {
        return Err(ApiError::new(
            Code::InvalidName,
            "source and type must not be empty",
        ));
    }
    let version = state
        .engine
        .schemas
        .declare(&state.engine.meta, &source, &ty, body.schema)
        .await
        .map_err(|e| match e {
            DeclareError::Invalid(e) => e.into(),
            DeclareError::Store(e) => ApiError::internal(e),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"source": source, "type": ty, "version": version})),
    ))
}

/// Removes the declared schema; discovered versions stay.
#[utoipa::path(delete, path = "/v1/schemas/{source}/{type}", tag = "schemas",
    params(("source" = String, Path, example = "/shop"), ("type" = String, Path, example = "order.created")),
    responses((status = 204), (status = 404)))]
async fn delete_schema(
    State(state): State<Arc<AppState>>,
    Path((source, ty)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if state
        .engine
        .schemas
        .undeclare(&state.engine.meta, &source, &ty)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "declared schema",
            &format!("{source} {ty}"),
        ))
    }
}
