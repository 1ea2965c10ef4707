//! `/v1/functions`: deploy, list, inspect, delete and invoke WebAssembly functions (SPEC §6).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_functions::Limits;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, parse_json, read_body};
use super::openapi::Binary;
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;
use switchyard_core::time::format_ms;
use switchyard_core::time::now_ms;
use switchyard_engine::functions::{
    DeployError, Deployed, MAX_MODULE_BYTES, RunError, output_value,
};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_functions))
        .routes(routes!(get_function, put_function, delete_function))
        .routes(routes!(invoke_function))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FunctionOut {
    name: String,
    /// Size of the module as uploaded.
    size_bytes: usize,
    /// SHA-256 of the module as uploaded, hex.
    sha256: String,
    timeout_ms: u64,
    memory_mb: u64,
    fuel: u64,
    created_at: String,
    updated_at: String,
}

fn function_out(d: &Deployed) -> FunctionOut {
    FunctionOut {
        name: d.name.clone(),
        size_bytes: d.size_bytes,
        sha256: d.sha256.clone(),
        timeout_ms: d.limits.timeout_ms(),
        memory_mb: d.limits.memory_mb(),
        fuel: d.limits.fuel,
        created_at: format_ms(d.created_at_ms),
        updated_at: format_ms(d.updated_at_ms),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FunctionList {
    functions: Vec<FunctionOut>,
}

#[utoipa::path(get, path = "/v1/functions", tag = "functions", security(("bearer" = ["read"])), responses((status = 200, body = FunctionList)))]
async fn list_functions(State(state): State<Arc<AppState>>) -> Json<FunctionList> {
    let functions = state
        .engine
        .functions
        .list()
        .iter()
        .map(|d| function_out(d))
        .collect();
    Json(FunctionList { functions })
}

fn find(state: &AppState, name: &str) -> ApiResult<Arc<Deployed>> {
    state
        .engine
        .functions
        .get(name)
        .ok_or_else(|| ApiError::not_found("function", name))
}

#[utoipa::path(get, path = "/v1/functions/{name}", tag = "functions", security(("bearer" = ["read"])),
    params(("name" = String, Path, example = "echo", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, body = FunctionOut), (status = 404)))]
async fn get_function(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<FunctionOut>> {
    let deployed = find(&state, &name)?;
    Ok(Json(function_out(&deployed)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LimitParams {
    /// Wall-clock limit per invocation (default 1000, at most 60000).
    #[param(minimum = 1, maximum = 60_000)]
    timeout_ms: Option<u64>,
    /// Linear memory limit (default 64, at most 1024).
    #[param(minimum = 1, maximum = 1024)]
    memory_mb: Option<u64>,
    /// Instruction budget per invocation (default 10^9, at most 10^12).
    #[param(minimum = 1, maximum = 1_000_000_000_000_u64)]
    fuel: Option<u64>,
}

/// Deploys a function: the body is a WebAssembly module, binary or WAT text. It is compiled
/// before anything is stored; a module that does not compile, imports anything but WASI
/// preview 1, or is not a command (no `_start`) is a 422 and changes nothing.
#[utoipa::path(put, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, example = "echo", pattern = "^[A-Za-z0-9._-]{1,64}$"), LimitParams),
    request_body(description = "a WebAssembly module: binary, or WAT text",
        content((inline(Binary) = "application/wasm"), (inline(String) = "text/plain"))),
    responses((status = 201, body = FunctionOut), (status = 200, body = FunctionOut), (status = 400, description = "not a valid name"),
        (status = 413), (status = 415), (status = 422, description = "the module does not compile, or a limit is out of range")))]
async fn put_function(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<LimitParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<FunctionOut>)> {
    super::buses::parse_name("function", &name)?;
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        // curl --data-binary sends form-urlencoded unless told otherwise.
        let accepted = [
            "application/wasm",
            "application/octet-stream",
            "text/plain",
            "application/x-www-form-urlencoded",
        ];
        if !accepted.iter().any(|a| ct.starts_with(a)) {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                format!(
                    "expected Content-Type application/wasm (a binary module or WAT text), got {ct:?}"
                ),
            ));
        }
    }
    let limits = Limits::new(params.timeout_ms, params.memory_mb, params.fuel)
        .map_err(|e| ApiError::new(Code::InvalidLimits, e))?;
    let module = read_body(body, MAX_MODULE_BYTES).await?;
    if module.is_empty() {
        return Err(ApiError::new(
            Code::InvalidModule,
            "the body is empty: send a WebAssembly module (binary or WAT text)",
        ));
    }
    let (deployed, created) = state
        .engine
        .functions
        .deploy(&state.engine.meta, &name, module.to_vec(), limits, now_ms())
        .await
        .map_err(|e| match e {
            DeployError::Compile(message) => ApiError::new(Code::InvalidModule, message),
            DeployError::Store(e) => e.into(),
        })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(function_out(&deployed))))
}

/// Deletes a function. One that a rule still uses (as target or transform) is a 409 naming
/// the rules: delete or change them first.
#[utoipa::path(delete, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, example = "echo", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 204), (status = 404), (status = 409, description = "rules still use it")))]
async fn delete_function(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    find(&state, &name)?;
    if state.engine.delete_function(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("function", &name))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvokeFailure {
    /// `timeout`, `fuel_exhausted`, `memory`, `trap` or `exit`.
    code: &'static str,
    message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvokeResult {
    /// Stdout: JSON when it parses (any JSON value), else a string. Absent when the run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<InvokeFailure>,
    duration_ms: f64,
    /// Fuel the run consumed; absent when a trap, the clock or the memory limit cut it short.
    #[serde(skip_serializing_if = "Option::is_none")]
    fuel_used: Option<u64>,
}

/// Runs a function once on the body (any JSON event) and answers with its output, or with
/// why it failed: a failed run is still a 200, since the request itself succeeded.
#[utoipa::path(post, path = "/v1/functions/{name}/invoke", tag = "functions", security(("bearer" = ["read"])),
    params(("name" = String, Path, example = "echo", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    request_body(content = Object, description = "the event: a JSON object"),
    responses((status = 200, body = InvokeResult), (status = 400), (status = 404), (status = 413), (status = 422, description = "the body is not a JSON object")))]
async fn invoke_function(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Body,
) -> ApiResult<Json<InvokeResult>> {
    find(&state, &name)?;
    let input = read_body(body, state.engine.limits.max_event_bytes).await?;
    // The event must be a JSON object, as on a bus; its bytes go to the function as sent.
    if !parse_json::<Value>(&input)?.is_object() {
        return Err(ApiError::new(
            Code::UnusableEvent,
            "the event must be a JSON object",
        ));
    }
    let run = state
        .engine
        .functions
        .invoke(&name, input.to_vec())
        .await
        .map_err(|e| match e {
            RunError::NotDeployed(_) => ApiError::not_found("function", &name),
            RunError::Failed { failure, .. } => ApiError::internal(failure),
        })?;
    let (output, error) = match run.result {
        Ok(out) => (Some(output_value(&out)), None),
        Err(f) => (
            None,
            Some(InvokeFailure {
                code: f.code.as_str(),
                message: f.message,
            }),
        ),
    };
    Ok(Json(InvokeResult {
        output,
        error,
        duration_ms: (run.duration.as_secs_f64() * 1e6).round() / 1e3,
        fuel_used: run.fuel_used,
    }))
}
