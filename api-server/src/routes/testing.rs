//! `POST /v1/patterns/test` and `POST /v1/transforms/test`: try a pattern or a transform on
//! any JSON event, CloudEvent or not, without storing anything.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_core::ErrorKind;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::ApiJson;
use super::rules::{check_pattern, check_transform};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(test_pattern))
        .routes(routes!(test_transform))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatternTest {
    #[schema(value_type = Object)]
    pattern: Value,
    #[schema(value_type = Object)]
    event: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatternTestResult {
    matches: bool,
}

#[utoipa::path(post, path = "/v1/patterns/test", tag = "rules", request_body = PatternTest,
    responses((status = 200, body = PatternTestResult), (status = 400, description = "malformed JSON"), (status = 413), (status = 415), (status = 422, description = "invalid pattern or event")))]
async fn test_pattern(ApiJson(body): ApiJson<Value>) -> ApiResult<Json<PatternTestResult>> {
    let body: PatternTest = from_object(body)?;
    let pattern = check_pattern(&body.pattern)?;
    check_event(&body.event)?;
    let matches = switchyard_rules::pattern_matches(&pattern, &body.event).map_err(|e| {
        ApiError::new(
            ErrorKind::Unprocessable,
            "invalid_pattern",
            format!("pattern: {e}"),
        )
    })?;
    Ok(Json(PatternTestResult { matches }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformTest {
    /// A transform as a rule's target takes it; `null` is the complete event.
    #[schema(value_type = Option<Object>, required = true)]
    transform: Value,
    #[schema(value_type = Object)]
    event: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransformTestResult {
    /// What the transform made of the event: any JSON value (`null` too).
    output: Value,
}

#[utoipa::path(post, path = "/v1/transforms/test", tag = "rules", request_body = TransformTest,
    responses((status = 200, body = TransformTestResult), (status = 400, description = "malformed JSON"), (status = 413), (status = 415), (status = 422, description = "invalid transform, or it failed on this event")))]
async fn test_transform(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<TransformTestResult>> {
    let body: TransformTest = from_object(body)?;
    let transform = check_transform(&body.transform)?;
    check_event(&body.event)?;
    let event_json = serde_json::to_vec(&body.event).unwrap_or_default();
    let output = state
        .functions
        .transform(&transform, &body.event, &event_json)
        .await
        .map_err(|e| ApiError::new(ErrorKind::Unprocessable, "transform_failed", e.to_string()))?;
    Ok(Json(TransformTestResult { output }))
}

/// The body as `T`, from a JSON object only: serde would fill a struct from an array too.
fn from_object<T: serde::de::DeserializeOwned>(body: Value) -> ApiResult<T> {
    if !body.is_object() {
        return Err(ApiError::new(
            ErrorKind::Unprocessable,
            "invalid_body",
            "the body must be a JSON object",
        ));
    }
    serde_json::from_value(body)
        .map_err(|e| ApiError::new(ErrorKind::Unprocessable, "invalid_field", e.to_string()))
}

/// Events on a bus are JSON objects; so are the ones tried here.
fn check_event(event: &Value) -> ApiResult<()> {
    if event.is_object() {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::Unprocessable,
            "invalid_event",
            "event must be a JSON object",
        ))
    }
}
