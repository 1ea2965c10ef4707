//! `POST /v1/patterns/test` and `POST /v1/transforms/test`: try a pattern or a transform on
//! any JSON event, CloudEvent or not, without storing anything. The event is held to the
//! structure rules of published events (no repeated key, no deeper than
//! `MAX_EVENT_DEPTH`, no lone surrogate), so a test never answers for an event that
//! publishing would refuse, or would read differently.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::ApiJson;
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;
use switchyard_engine::rulespec::{check_pattern, check_transform};

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
    event: Box<RawValue>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatternTestResult {
    matches: bool,
}

#[utoipa::path(post, path = "/v1/patterns/test", tag = "rules", security(("bearer" = ["read"])), request_body = PatternTest,
    responses((status = 200, body = PatternTestResult), (status = 400, description = "the event has a repeated key, nests too deep or holds a lone surrogate"), (status = 413), (status = 415), (status = 422, description = "invalid pattern or event")))]
async fn test_pattern(ApiJson(body): ApiJson<PatternTest>) -> ApiResult<Json<PatternTestResult>> {
    let pattern = check_pattern(&body.pattern)?;
    let event = test_event(&body.event)?;
    let matches = switchyard_rules::pattern_matches(&pattern, &event)
        .map_err(|e| ApiError::new(Code::InvalidPattern, format!("pattern: {e}")))?;
    Ok(Json(PatternTestResult { matches }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformTest {
    /// A transform as a rule's target takes it; `null` is the complete event.
    #[schema(value_type = Option<Object>, required = true)]
    transform: Value,
    #[schema(value_type = Object)]
    event: Box<RawValue>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransformTestResult {
    /// What the transform made of the event: any JSON value (`null` too).
    output: Value,
}

#[utoipa::path(post, path = "/v1/transforms/test", tag = "rules", security(("bearer" = ["read"])), request_body = TransformTest,
    responses((status = 200, body = TransformTestResult), (status = 400, description = "the event has a repeated key, nests too deep or holds a lone surrogate"), (status = 413), (status = 415), (status = 422, description = "invalid transform, or it failed on this event")))]
async fn test_transform(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<TransformTest>,
) -> ApiResult<Json<TransformTestResult>> {
    let transform = check_transform(&body.transform)?;
    let event = test_event(&body.event)?;
    let event_json = serde_json::to_vec(&event).unwrap_or_default();
    let output = state
        .engine
        .functions
        .transform(&transform, &event, &event_json)
        .await
        .map_err(|e| ApiError::new(Code::TransformFailed, e.to_string()))?;
    Ok(Json(TransformTestResult { output }))
}

/// A test request's event: refused (400) where publishing would refuse it for its
/// structure, and (422) unless it is a JSON object, as events on a bus are.
fn test_event(raw: &RawValue) -> ApiResult<Value> {
    switchyard_core::cloudevent::structure::check_event(raw.get())?;
    let event: Value = serde_json::from_str(raw.get())
        .map_err(|e| ApiError::new(Code::InvalidJson, format!("event: {e}")))?;
    if !event.is_object() {
        return Err(ApiError::new(
            Code::UnusableEvent,
            "event must be a JSON object",
        ));
    }
    Ok(event)
}
