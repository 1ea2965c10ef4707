//! A rule's targets: as written (`TargetSpec`, the form the API takes and shows and the
//! metadata store keeps) and as checked (`Target`: every setting parsed once, when its rule
//! is `PUT` or loaded). This module knows the target kinds: how each kind's settings are
//! checked and which of them are secrets; `dispatch::subscription::deliverer` builds each
//! kind's deliverer. A new kind is a module in `switchyard-targets` (or the engine), an arm
//! in each match here and in the factory, and its form in the console.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_core::Name;
use switchyard_rules::Transform;
use switchyard_targets::RetryPolicy;
use switchyard_targets::http::HttpConfig;
use switchyard_targets::queue::amqp::AmqpConfig;
use switchyard_targets::queue::mqtt::MqttConfig;
use switchyard_targets::queue::nats::NatsConfig;
use switchyard_targets::queue::redis::RedisConfig;

/// Most deliveries one subscription holds at once (in flight or waiting to retry), and so
/// the most a target's `concurrency` may ask for.
pub const MAX_CONCURRENCY: u32 = 256;
/// Default per-target concurrency (SPEC §6).
pub const DEFAULT_CONCURRENCY: u32 = 64;

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

/// A target's kind, with its settings parsed and checked.
#[derive(Debug, Clone)]
pub enum KindSettings {
    Http(HttpConfig),
    Nats(NatsConfig),
    Amqp(AmqpConfig),
    Redis(RedisConfig),
    Mqtt(MqttConfig),
    Function(Name),
    Bus(Name),
}

/// A target as checked: what its subscription runs with. Built once from its
/// [`TargetSpec`], which it keeps (a changed spec restarts the subscription).
#[derive(Debug, Clone)]
pub struct Target {
    pub spec: TargetSpec,
    pub settings: KindSettings,
    pub transform: Option<Arc<Transform>>,
    pub policy: RetryPolicy,
    /// Where events go when they are dead-lettered, besides the dead-letter list.
    pub dead_letter_bus: Option<String>,
    /// Events with the same partition key are delivered one at a time, in order.
    pub partition: bool,
    pub rate_limit_per_second: Option<u32>,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Target {
    /// Parses and checks a target as written; the error names the field at fault.
    pub fn check(spec: &TargetSpec) -> Result<Target, String> {
        Name::parse(&spec.id).map_err(|e| format!("id: {e}"))?;
        let settings = KindSettings::check(spec)?;
        let transform = spec
            .transform
            .as_ref()
            .map(|t| Transform::parse(t).map_err(|e| format!("transform: {e}")))
            .transpose()?
            .map(Arc::new);
        let policy = RetryPolicy::from_json(spec.retry.as_ref())?;
        let dead_letter_bus = spec
            .dead_letter
            .as_ref()
            .and_then(|d| d.get("bus"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let partition = match spec.ordering.as_deref() {
            None => false,
            Some("partition") => true,
            Some(other) => {
                return Err(format!("ordering must be \"partition\", got {other:?}"));
            }
        };
        let concurrency = spec
            .concurrency
            .unwrap_or(DEFAULT_CONCURRENCY)
            .clamp(1, MAX_CONCURRENCY) as usize;
        Ok(Target {
            spec: spec.clone(),
            settings,
            transform,
            policy,
            dead_letter_bus,
            partition,
            rate_limit_per_second: spec.rate_limit_per_second.filter(|r| *r > 0),
            concurrency,
        })
    }

    /// Whether this target, or its transform, runs the function `name`.
    pub fn runs_function(&self, name: &str) -> bool {
        let as_target = matches!(&self.settings, KindSettings::Function(f) if f.as_str() == name);
        let as_transform = self
            .transform
            .as_ref()
            .is_some_and(|t| t.function_name() == Some(name));
        as_target || as_transform
    }
}

impl KindSettings {
    /// The settings under the key `kind` names, checked.
    fn check(spec: &TargetSpec) -> Result<KindSettings, String> {
        let key = spec.kind.key();
        let missing = || format!("a {key} target needs its settings under \"{key}\"");
        let name = |field: &Option<String>| -> Result<Name, String> {
            let text = field.as_deref().ok_or_else(missing)?;
            Name::parse(text).map_err(|e| format!("{key}: {e}"))
        };
        fn settings(field: &Option<Value>, missing: impl Fn() -> String) -> Result<&Value, String> {
            field.as_ref().ok_or_else(missing)
        }
        Ok(match spec.kind {
            TargetKind::Http => {
                KindSettings::Http(HttpConfig::parse(settings(&spec.http, missing)?)?)
            }
            TargetKind::Nats => {
                KindSettings::Nats(NatsConfig::parse(settings(&spec.nats, missing)?)?)
            }
            TargetKind::Amqp => {
                KindSettings::Amqp(AmqpConfig::parse(settings(&spec.amqp, missing)?)?)
            }
            TargetKind::Redis => {
                KindSettings::Redis(RedisConfig::parse(settings(&spec.redis, missing)?)?)
            }
            TargetKind::Mqtt => {
                KindSettings::Mqtt(MqttConfig::parse(settings(&spec.mqtt, missing)?)?)
            }
            TargetKind::Function => KindSettings::Function(name(&spec.function)?),
            TargetKind::Bus => KindSettings::Bus(name(&spec.bus)?),
        })
    }
}

impl TargetKind {
    /// The key its settings sit under.
    pub fn key(self) -> &'static str {
        match self {
            TargetKind::Http => "http",
            TargetKind::Function => "function",
            TargetKind::Nats => "nats",
            TargetKind::Amqp => "amqp",
            TargetKind::Redis => "redis",
            TargetKind::Mqtt => "mqtt",
            TargetKind::Bus => "bus",
        }
    }
}

impl TargetSpec {
    /// The spec as a key that may not see secrets sees it: header values, signing secrets
    /// and the passwords in URLs masked; enough to recognise a secret, never to use it.
    pub fn redacted(&self) -> TargetSpec {
        let mut spec = self.clone();
        for settings in [
            &mut spec.http,
            &mut spec.nats,
            &mut spec.amqp,
            &mut spec.redis,
            &mut spec.mqtt,
        ]
        .into_iter()
        .flatten()
        {
            redact_settings(settings);
        }
        spec
    }
}

/// Masks the secrets of one target's kind-specific settings (`http`, `nats`, …) in place.
fn redact_settings(settings: &mut Value) {
    let Some(obj) = settings.as_object_mut() else {
        return;
    };
    if let Some(Value::String(url)) = obj.get_mut("url") {
        *url = mask_url_password(url);
    }
    if let Some(Value::String(secret)) = obj.get_mut("signing_secret") {
        *secret = mask(secret);
    }
    if let Some(Value::Object(headers)) = obj.get_mut("headers") {
        for value in headers.values_mut() {
            if let Value::String(v) = value {
                *v = mask(v);
            }
        }
    }
}

/// `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw` → `whsec_…LaSw`; short values are hidden
/// whole. A prefix up to the first `_` is kept when it is short (it names the kind of
/// secret, not the secret).
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "…".to_owned();
    }
    let prefix: String = match chars.iter().position(|c| *c == '_') {
        Some(i) if i < 8 => chars[..=i].iter().collect(),
        _ => String::new(),
    };
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}…{tail}")
}

/// `amqp://user:pass@host/vhost` → `amqp://user:…@host/vhost`. Text that is not a URL
/// with a password comes back as it was.
pub fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let masked = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:…"),
        // `redis://token@host`: a lone userinfo is often the credential itself.
        None => "…".to_owned(),
    };
    format!(
        "{}{masked}{}",
        &url[..scheme_end + 3],
        &url[scheme_end + 3 + at..]
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn masks_keep_a_recognisable_shape() {
        assert_eq!(
            mask("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "whsec_…LaSw"
        );
        assert_eq!(mask("Bearer s3cr3t-t0ken-abcd"), "…abcd");
        assert_eq!(mask("short"), "…");
        assert_eq!(
            mask_url_password("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:…@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            mask_url_password("redis://:hunter2@redis:6379/0"),
            "redis://:…@redis:6379/0"
        );
        assert_eq!(
            mask_url_password("redis://tok3n@redis:6379"),
            "redis://…@redis:6379"
        );
        assert_eq!(
            mask_url_password("https://crm.example/hook?a=b@c"),
            "https://crm.example/hook?a=b@c"
        );
        assert_eq!(
            mask_url_password("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
    }

    fn spec(v: Value) -> TargetSpec {
        serde_json::from_value(v).expect("a target as written")
    }

    #[test]
    fn specs_lose_their_secrets() {
        let s = spec(json!({"id": "t", "kind": "http", "http": {
            "url": "https://user:pa55word@crm.example/hook",
            "headers": {"Authorization": "Bearer 0123456789abcdef", "x-team": "crm"},
            "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "timeout_ms": 1000
        }}));
        assert_eq!(
            serde_json::to_value(s.redacted()).expect("serializes"),
            json!({"id": "t", "kind": "http", "http": {
                "url": "https://user:…@crm.example/hook",
                "headers": {"Authorization": "…cdef", "x-team": "…"},
                "signing_secret": "whsec_…LaSw",
                "timeout_ms": 1000
            }})
        );
    }

    #[test]
    fn checks_name_the_field() {
        let err = |v: Value| Target::check(&spec(v)).expect_err("refused");
        assert_eq!(
            err(json!({"id": "t", "kind": "http"})),
            "a http target needs its settings under \"http\""
        );
        assert_eq!(
            err(json!({"id": "t", "kind": "bus", "bus": "b", "ordering": "fifo"})),
            "ordering must be \"partition\", got \"fifo\""
        );
        assert!(
            err(json!({"id": "t", "kind": "http", "http": {"url": "ftp://x"}}))
                .starts_with("http.url")
        );
        assert!(
            err(json!({"id": "t", "kind": "bus", "bus": "b", "transform": {"kind": "nope"}}))
                .starts_with("transform: ")
        );
    }

    #[test]
    fn checked_targets_carry_typed_settings() {
        let t = Target::check(&spec(
            json!({"id": "t", "kind": "function", "function": "enrich",
            "ordering": "partition", "concurrency": 1000, "rate_limit_per_second": 0,
            "dead_letter": {"bus": "dlq"}}),
        ))
        .expect("accepted");
        assert!(matches!(&t.settings, KindSettings::Function(f) if f.as_str() == "enrich"));
        assert_eq!(
            (t.partition, t.concurrency, t.rate_limit_per_second),
            (true, 256, None)
        );
        assert_eq!(t.dead_letter_bus.as_deref(), Some("dlq"));
        assert!(t.runs_function("enrich") && !t.runs_function("other"));
        let by_transform = Target::check(&spec(json!({"id": "t", "kind": "bus", "bus": "b",
            "transform": {"kind": "function", "function": "shape"}})))
        .expect("accepted");
        assert!(by_transform.runs_function("shape"));
    }
}
