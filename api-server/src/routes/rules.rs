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
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;
use switchyard_core::time::now_ms;
use switchyard_engine::buses::Bus;
use switchyard_engine::meta::StoredRule;
use switchyard_engine::rulespec::{TargetSpec, check_pattern, check_targets};

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

/// A rule as a key that may not see secrets sees it: header values, signing secrets and
/// URL passwords masked.
fn redacted(mut rule: RuleOut) -> RuleOut {
    for t in &mut rule.targets {
        for settings in [
            &mut t.http,
            &mut t.nats,
            &mut t.amqp,
            &mut t.redis,
            &mut t.mqtt,
        ]
        .into_iter()
        .flatten()
        {
            crate::redact::target_settings(settings);
        }
    }
    rule
}

fn rule_out_for(caller: Option<&Caller>, r: &StoredRule, inactive: Option<&str>) -> RuleOut {
    if Caller::sees_secrets(caller) {
        rule_out(r, inactive)
    } else {
        redacted(rule_out(r, inactive))
    }
}

fn rule_out(r: &StoredRule, inactive: Option<&str>) -> RuleOut {
    RuleOut {
        bus: r.bus.clone(),
        name: r.name.clone(),
        description: r.description.clone(),
        enabled: r.enabled && inactive.is_none(),
        inactive_reason: inactive.map(str::to_owned),
        // Both were validated JSON when stored.
        pattern: serde_json::from_str(&r.pattern).unwrap_or(Value::Null),
        targets: serde_json::from_str(&r.targets).unwrap_or_default(),
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
        .map(|r| rule_out_for(caller.as_ref(), r, set.inactive_reason(&r.name)))
        .collect();
    Ok(Json(RuleList { rules }))
}

/// Creates or replaces a rule. It applies to events published after this answers.
#[utoipa::path(put, path = "/v1/buses/{bus}/rules/{rule}", tag = "rules", request_body = RuleIn,
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("rule" = String, Path, example = "to-echo", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 201, body = RuleOut), (status = 200, body = RuleOut), (status = 400, description = "malformed JSON, or not a valid name"), (status = 413), (status = 415), (status = 404), (status = 422)))]
async fn put_rule(
    State(state): State<Arc<AppState>>,
    Path((bus, rule)): Path<(String, String)>,
    ApiJson(body): ApiJson<RuleIn>,
) -> ApiResult<(StatusCode, Json<RuleOut>)> {
    // Rule writes take turns with bus PUT/DELETE: interleaved with a bus's deletion, a
    // rule row outlived its bus.
    let _turn = state.engine.buses.lifecycle().await;
    let bus = find_bus(&state, &bus)?;
    let name = parse_name("rule", &rule)?;
    check_pattern(&body.pattern)?;
    check_targets(&body.targets)?;
    let now = now_ms();
    let created_at_ms = bus
        .rules()
        .get(name.as_str())
        .map_or(now, |r| r.created_at_ms);
    let stored = StoredRule {
        bus: bus.settings.name.clone(),
        name: name.to_string(),
        description: body.description,
        enabled: body.enabled.unwrap_or(true),
        pattern: body.pattern.to_string(),
        targets: serde_json::to_string(&body.targets).map_err(ApiError::internal)?,
        created_at_ms,
        updated_at_ms: now,
    };
    let created = state.engine.meta.put_rule(&stored, now).await?;
    let target_ids: Vec<String> = body.targets.iter().map(|t| t.id.clone()).collect();
    state
        .engine
        .meta
        .delete_cursors(&bus.settings.name, name.as_str(), &target_ids)
        .await?;
    let out = rule_out(&stored, None);
    bus.rules_mut().put(stored).map_err(ApiError::internal)?;
    resync(&state, &bus).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)))
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
    Ok(Json(rule_out_for(
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
    let _turn = state.engine.buses.lifecycle().await;
    let bus = find_bus(&state, &bus)?;
    find_rule(&bus, &rule)?;
    state
        .engine
        .meta
        .delete_rule(&bus.settings.name, &rule)
        .await?;
    state
        .engine
        .meta
        .delete_cursors(&bus.settings.name, &rule, &[])
        .await?;
    bus.rules_mut().remove(&rule);
    resync(&state, &bus).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    state: &AppState,
    bus: &str,
    rule: &str,
    enabled: bool,
) -> ApiResult<Json<RuleOut>> {
    let _turn = state.engine.buses.lifecycle().await;
    let bus = find_bus(state, bus)?;
    let mut stored = find_rule(&bus, rule)?;
    let inactive = bus.rules().inactive_reason(rule).map(str::to_owned);
    if enabled && let Some(reason) = &inactive {
        return Err(ApiError::new(
            Code::InvalidRule,
            format!("rule {rule:?} cannot run until it is replaced: {reason}"),
        ));
    }
    stored.enabled = enabled;
    stored.updated_at_ms = now_ms();
    state
        .engine
        .meta
        .put_rule(&stored, stored.updated_at_ms)
        .await?;
    let out = rule_out(&stored, inactive.as_deref());
    match inactive {
        Some(reason) => bus.rules_mut().put_inactive(stored, reason),
        None => bus.rules_mut().put(stored).map_err(ApiError::internal)?,
    }
    resync(state, &bus).await?;
    Ok(Json(out))
}

/// Applies the bus's current rules to its running deliveries.
async fn resync(_state: &AppState, bus: &Bus) -> ApiResult<()> {
    bus.resync().await;
    Ok(())
}

#[utoipa::path(post, path = "/v1/buses/{bus}/rules/{rule}/enable", tag = "rules",
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("rule" = String, Path, example = "to-echo", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, body = RuleOut), (status = 404)))]
async fn enable_rule(
    State(state): State<Arc<AppState>>,
    Path((bus, rule)): Path<(String, String)>,
) -> ApiResult<Json<RuleOut>> {
    set_enabled(&state, &bus, &rule, true).await
}

#[utoipa::path(post, path = "/v1/buses/{bus}/rules/{rule}/disable", tag = "rules",
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("rule" = String, Path, example = "to-echo", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, body = RuleOut), (status = 404)))]
async fn disable_rule(
    State(state): State<Arc<AppState>>,
    Path((bus, rule)): Path<(String, String)>,
) -> ApiResult<Json<RuleOut>> {
    set_enabled(&state, &bus, &rule, false).await
}
