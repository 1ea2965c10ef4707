//! What a rule says, checked: its pattern and its targets, as `PUT` accepts them and as a
//! stored rule is checked again when loaded (it may predate a limit of this version).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_core::Name;

use crate::meta::StoredRule;

/// Why a rule, or a part of one, is refused: which part, and a message that names the
/// field (and, for a pattern, the path in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    pub part: SpecPart,
    pub message: String,
    /// Where in the pattern, for a pattern.
    pub path: Option<String>,
}

/// The part of a rule a [`SpecError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecPart {
    Pattern,
    Transform,
    Target,
}

impl SpecError {
    /// How the API reports it: well-formed input that breaks a rule.
    pub fn kind(&self) -> switchyard_core::ErrorKind {
        switchyard_core::ErrorKind::Unprocessable
    }
}

fn unprocessable(part: SpecPart, message: String) -> SpecError {
    SpecError {
        part,
        message,
        path: None,
    }
}

/// Largest pattern accepted, as compact JSON.
pub const MAX_PATTERN_BYTES: usize = 64 * 1024;

/// Checks a pattern the way EventBridge does; 422 names the offending path.
pub fn check_pattern(pattern: &Value) -> Result<switchyard_rules::Pattern, SpecError> {
    // Compiling costs about 25 µs a value: the cap keeps one pattern to a fraction of a
    // second of one core, on the test endpoint as on save.
    let size = serde_json::to_string(pattern).map_or(usize::MAX, |t| t.len());
    if size > MAX_PATTERN_BYTES {
        return Err(SpecError {
            path: Some(String::new()),
            ..unprocessable(
                SpecPart::Pattern,
                format!("pattern: is {size} bytes; the limit is {MAX_PATTERN_BYTES}"),
            )
        });
    }
    switchyard_rules::Pattern::from_value(pattern).map_err(|e| SpecError {
        path: Some(e.path.clone()),
        ..unprocessable(SpecPart::Pattern, format!("pattern: {e}"))
    })
}

/// Checks a transform configuration; 422 names the offending field.
pub fn check_transform(transform: &Value) -> Result<switchyard_rules::Transform, SpecError> {
    switchyard_rules::Transform::parse(transform)
        .map_err(|e| unprocessable(SpecPart::Transform, format!("transform: {e}")))
}

pub fn check_targets(targets: &[TargetSpec]) -> Result<(), SpecError> {
    let mut ids: Vec<&str> = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let at = |msg: String| unprocessable(SpecPart::Target, format!("targets[{i}]: {msg}"));
        Name::parse(&t.id).map_err(|e| at(format!("id: {e}")))?;
        if ids.contains(&t.id.as_str()) {
            return Err(at(format!(
                "id {:?} is used by another target of this rule",
                t.id
            )));
        }
        ids.push(&t.id);
        let has = |present: bool, key: &str| {
            if present {
                Ok(())
            } else {
                Err(at(format!(
                    "a {key} target needs its settings under \"{key}\""
                )))
            }
        };
        match t.kind {
            TargetKind::Http => {
                has(t.http.is_some(), "http")?;
                if let Some(http) = &t.http {
                    switchyard_targets::http::HttpConfig::parse(http).map_err(at)?;
                }
            }
            TargetKind::Nats => {
                has(t.nats.is_some(), "nats")?;
                if let Some(c) = &t.nats {
                    switchyard_targets::queue::nats::NatsConfig::parse(c).map_err(at)?;
                }
            }
            TargetKind::Redis => {
                has(t.redis.is_some(), "redis")?;
                if let Some(c) = &t.redis {
                    switchyard_targets::queue::redis::RedisConfig::parse(c).map_err(at)?;
                }
            }
            TargetKind::Amqp => {
                has(t.amqp.is_some(), "amqp")?;
                if let Some(c) = &t.amqp {
                    switchyard_targets::queue::amqp::AmqpConfig::parse(c).map_err(at)?;
                }
            }
            TargetKind::Mqtt => {
                has(t.mqtt.is_some(), "mqtt")?;
                if let Some(c) = &t.mqtt {
                    switchyard_targets::queue::mqtt::MqttConfig::parse(c).map_err(at)?;
                }
            }
            TargetKind::Function => {
                has(t.function.is_some(), "function")?;
                if let Some(function) = &t.function {
                    Name::parse(function).map_err(|e| at(format!("function: {e}")))?;
                }
            }
            TargetKind::Bus => {
                has(t.bus.is_some(), "bus")?;
                if let Some(bus) = &t.bus {
                    Name::parse(bus).map_err(|e| at(format!("bus: {e}")))?;
                }
            }
        }
        if let Some(transform) = &t.transform {
            check_transform(transform).map_err(|e| at(e.message))?;
        }
        switchyard_targets::RetryPolicy::from_json(t.retry.as_ref()).map_err(at)?;
        if let Some(ordering) = &t.ordering
            && ordering != "partition"
        {
            return Err(at(format!(
                "ordering must be \"partition\", got {ordering:?}"
            )));
        }
    }
    Ok(())
}

/// Checks a stored rule as `PUT` would: `Err` says what this version refuses in it.
pub fn validate_stored(rule: &StoredRule) -> Result<(), String> {
    let pattern: Value =
        serde_json::from_str(&rule.pattern).map_err(|e| format!("pattern: {e}"))?;
    check_pattern(&pattern).map_err(|e| e.message)?;
    let targets: Vec<TargetSpec> =
        serde_json::from_str(&rule.targets).map_err(|e| format!("targets: {e}"))?;
    check_targets(&targets).map_err(|e| e.message)
}

/// One target of a rule. Its kind-specific settings sit under the key named by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub id: String,
    pub kind: TargetKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub http: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub nats: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub amqp: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub redis: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub mqtt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    /// `complete` (default), `jsonpath`, `constant`, `template` or `function`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub transform: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub retry: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub dead_letter: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    /// Deliveries in flight at once (default 64, at most 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Http,
    Function,
    Nats,
    Amqp,
    Redis,
    Mqtt,
    Bus,
}

impl TargetSpec {
    /// Whether this target, or its transform, runs the function `name`.
    pub fn runs_function(&self, name: &str) -> bool {
        let as_target = self.kind == TargetKind::Function && self.function.as_deref() == Some(name);
        let as_transform = self.transform.as_ref().is_some_and(|t| {
            t.get("kind").and_then(Value::as_str) == Some("function")
                && t.get("function").and_then(Value::as_str) == Some(name)
        });
        as_target || as_transform
    }
}

/// The targets of a stored rule (checked when stored, so this does not fail for rules this
/// version accepted; an unreadable list reads as none).
pub fn stored_targets(rule: &StoredRule) -> Vec<TargetSpec> {
    serde_json::from_str(&rule.targets).unwrap_or_default()
}
