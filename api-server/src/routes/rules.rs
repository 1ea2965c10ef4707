//! `/v1/buses/{bus}/rules`: rules with EventBridge patterns and their targets.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::buses::{find_bus, parse_name};
use super::extract::ApiJson;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use switchyard_engine::NewRule;
use switchyard_engine::buses::Bus;
use switchyard_engine::meta::StoredRule;
use switchyard_engine::target::TargetSpec;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_rules))
        .routes(routes!(put_rule, get_rule, delete_rule))
        .routes(routes!(enable_rule))
        .routes(routes!(disable_rule))
}

/// The body of `PUT /v1/buses/{bus}/rules/{rule}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleIn {
    description: Option<String>,
    /// Default true.
    enabled: Option<bool>,
    /// An EventBridge event pattern, matched against the event in CloudEvents JSON form.
    #[schema(value_type = Object)]
    pattern: Value,
    /// Where matched events go; empty: the rule only records its matches.
    #[serde(default)]
    targets: Vec<TargetSpec>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleOut {
    bus: String,
    name: String,
    description: Option<String>,
    /// False while paused, and while inactive (see `inactive_reason`).
    enabled: bool,
    /// Set when the stored rule breaks a limit of this version (it was saved by an older
    /// one): it matches nothing until it is replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    inactive_reason: Option<String>,
    #[schema(value_type = Object)]
    pattern: Value,
    targets: Vec<TargetSpec>,
    created_at: String,
    updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    rules: Vec<RuleOut>,
}

/// A rule as the caller may see it: a key that may not see secrets sees header values,
/// signing secrets and URL passwords masked.
fn rule_out(caller: Option<&Caller>, r: &StoredRule, inactive: Option<&str>) -> RuleOut {
    let targets = if Caller::sees_secrets(caller) {
        r.targets.clone()
    } else {
        r.targets.iter().map(TargetSpec::redacted).collect()
    };
    RuleOut {
        bus: r.bus.clone(),
        name: r.name.clone(),
        description: r.description.clone(),
        enabled: r.enabled && inactive.is_none(),
        inactive_reason: inactive.map(str::to_owned),
        // Validated JSON when stored.
        pattern: serde_json::from_str(&r.pattern).unwrap_or(Value::Null),
        targets,
        created_at: switchyard_core::time::format_ms(r.created_at_ms),
        updated_at: switchyard_core::time::format_ms(r.updated_at_ms),
    }
}

fn find_rule(bus: &Bus, name: &str) -> ApiResult<StoredRule> {
    bus.rules()
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("rule", name))
}

#[utoipa::path(get, path = "/v1/buses/{bus}/rules", tag = "rules", security(("bearer" = ["read"])),
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, body = RuleList), (status = 404)))]
async fn list_rules(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path(bus): Path<String>,
) -> ApiResult<Json<RuleList>> {
    let bus = find_bus(&state, &bus)?;
    let caller = caller.map(|c| c.0);
    let set = bus.rules();
    let rules = set
        .list()
        .map(|r| rule_out(caller.as_ref(), r, set.inactive_reason(&r.name)))
        .collect();
    Ok(Json(RuleList { rules }))
}

/// Creates or replaces a rule. It applies to events published after this answers.
#[utoipa::path(put, path = "/v1/buses/{bus}/rules/{rule}", tag = "rules", request_body = RuleIn,
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("rule" = String, Path, example = "to-echo", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 201, body = RuleOut), (status = 200, body = RuleOut), (status = 400, description = "malformed JSON, or not a valid name"), (status = 413), (status = 415), (status = 404), (status = 422)))]
async fn put_rule(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path((bus, rule)): Path<(String, String)>,
    ApiJson(body): ApiJson<RuleIn>,
) -> ApiResult<(StatusCode, Json<RuleOut>)> {
    let rule = NewRule {
        name: parse_name("rule", &rule)?,
        description: body.description,
        enabled: body.enabled.unwrap_or(true),
        pattern: body.pattern,
        targets: body.targets,
    };
    let (stored, created) = state.engine.put_rule(&bus, rule).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let caller = caller.map(|c| c.0);
    Ok((status, Json(rule_out(caller.as_ref(), &stored, None))))
}

#[utoipa::path(get, path = "/v1/buses/{bus}/rules/{rule}", tag = "rules", security(("bearer" = ["read"])),
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("rule" = String, Path, example = "to-echo", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, body = RuleOut), (status = 404)))]
async fn get_rule(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path((bus, rule)): Path<(String, String)>,
) -> ApiResult<Json<RuleOut>> {
    let bus = find_bus(&state, &bus)?;
    let caller = caller.map(|c| c.0);
    let stored = find_rule(&bus, &rule)?;
    let inactive = bus.rules().inactive_reason(&rule).map(str::to_owned);
    Ok(Json(rule_out(
        caller.as_ref(),
        &stored,
        inactive.as_deref(),
    )))
}

#[utoipa::path(delete, path = "/v1/buses/{bus}/rules/{rule}", tag = "rules",
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("rule" = String, Path, example = "to-echo", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 204), (status = 404)))]
async fn delete_rule(
    State(state): State<Arc<AppState>>,
    Path((bus, rule)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.engine.delete_rule(&bus, &rule).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    state: &AppState,
    caller: Option<Extension<Caller>>,
    bus: &str,
    rule: &str,
    enabled: bool,
) -> ApiResult<Json<RuleOut>> {
    let (stored, inactive) = state.engine.set_rule_enabled(bus, rule, enabled).await?;
    let caller = caller.map(|c| c.0);
    Ok(Json(rule_out(
        caller.as_ref(),
        &stored,
        inactive.as_deref(),
    )))
}

#[utoipa::path(post, path = "/v1/buses/{bus}/rules/{rule}/enable", tag = "rules",
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("rule" = String, Path, example = "to-echo", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, body = RuleOut), (status = 404)))]
async fn enable_rule(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path((bus, rule)): Path<(String, String)>,
) -> ApiResult<Json<RuleOut>> {
    set_enabled(&state, caller, &bus, &rule, true).await
}

#[utoipa::path(post, path = "/v1/buses/{bus}/rules/{rule}/disable", tag = "rules",
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("rule" = String, Path, example = "to-echo", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, body = RuleOut), (status = 404)))]
async fn disable_rule(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path((bus, rule)): Path<(String, String)>,
) -> ApiResult<Json<RuleOut>> {
    set_enabled(&state, caller, &bus, &rule, false).await
}
