//! `/v1/keys`: API keys with a role (admin only). The key itself is in the answer to its
//! creation and nowhere else, ever.

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
use switchyard_core::time::format_ms;
use switchyard_core::time::now_ms;
use switchyard_engine::keys::{ApiKey, Role};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(delete_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    name: String,
    /// `admin`, `publisher` (publish only) or `reader` (reads, searches, analytics, tests).
    #[schema(pattern = "^(admin|publisher|reader)$")]
    role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    name: String,
    role: &'static str,
    /// The key's first characters, to recognise it by.
    prefix: String,
    created_at: String,
    /// Only in the answer to the creation: keep it, it cannot be shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

fn key_out(k: &ApiKey, secret: Option<String>) -> KeyOut {
    KeyOut {
        name: k.name.clone(),
        role: k.role.as_str(),
        prefix: k.prefix.clone(),
        created_at: format_ms(k.created_at_ms),
        key: secret,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    keys: Vec<KeyOut>,
}

#[utoipa::path(get, path = "/v1/keys", tag = "keys", responses((status = 200, body = KeyList)))]
async fn list_keys(State(state): State<Arc<AppState>>) -> Json<KeyList> {
    let keys = state.keys.list().iter().map(|k| key_out(k, None)).collect();
    Json(KeyList { keys })
}

/// Creates a key. 409 if the name is taken: revoke it first.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = KeyIn,
    responses((status = 201, body = KeyOut), (status = 400, description = "malformed JSON"), (status = 409), (status = 413), (status = 415), (status = 422)))]
async fn create_key(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<KeyIn>,
) -> ApiResult<(StatusCode, Json<KeyOut>)> {
    Name::parse(&body.name).map_err(|e| ApiError::new(Code::InvalidField, format!("name: {e}")))?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::new(
            Code::InvalidField,
            format!(
                "role: {:?} is not one of admin, publisher, reader",
                body.role
            ),
        )
    })?;
    let created = state
        .keys
        .create(&state.engine.meta, &body.name, role, now_ms())
        .await
        .map_err(ApiError::internal)?;
    match created {
        Some((key, secret)) => Ok((StatusCode::CREATED, Json(key_out(&key, Some(secret))))),
        None => Err(ApiError::new(
            Code::KeyExists,
            format!("a key named {:?} exists; revoke it first", body.name),
        )),
    }
}

/// Revokes a key: requests with it are refused from now on.
#[utoipa::path(delete, path = "/v1/keys/{name}", tag = "keys",
    params(("name" = String, Path, example = "ci", pattern = "^[A-Za-z0-9._-]{1,64}$")), responses((status = 204), (status = 404)))]
async fn delete_key(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if state.keys.revoke(&state.engine.meta, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("key", &name))
    }
}
