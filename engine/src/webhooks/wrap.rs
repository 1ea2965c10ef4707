//! Wrapping: a received body becomes a CloudEvent (JSON format), its `id` the provider's
//! delivery id when there is one.

use base64::Engine as _;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use switchyard_core::cloudevent::parse_structured;
use switchyard_core::time::format_ms;
use switchyard_core::{CloudEvent, EventError, Limits, StructureError};

use super::{Headers, Scheme, TypeFrom, Webhook, default_type};

impl Webhook {
    /// Wraps a received body into a CloudEvent (JSON format). The error is a client
    /// mistake: the type cannot be found where `type_from` says, or a JSON body holds what
    /// no event may (a repeated key, too deep, a lone surrogate).
    pub fn event(
        &self,
        headers: &dyn Headers,
        body: &[u8],
        now: &str,
        fresh_id: impl FnOnce() -> String,
    ) -> Result<Value, BodyError> {
        let content_type = headers
            .get("content-type")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        let is_json_type = content_type.as_deref().is_none_or(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/json") || ct.contains("+json")
        });
        // The grammar first (a raw value has no depth limit, unlike a `Value`), so that a
        // JSON body that will become `data` gets the structure check of published events
        // instead of passing as text.
        let raw = serde_json::from_slice::<&RawValue>(body).ok();
        if let (Some(raw), true) = (raw, is_json_type) {
            switchyard_core::cloudevent::structure::check_data(raw.get())?;
        }
        let parsed: Option<Value> = raw.and_then(|r| serde_json::from_str(r.get()).ok());
        let ty = match &self.type_from {
            None => default_type(&self.name),
            Some(TypeFrom::Header(h)) => headers
                .get(h.as_str())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    BodyError::NoType(format!(
                        "the request has no {h} header to take the type from"
                    ))
                })?
                .to_owned(),
            Some(TypeFrom::Path { text, query }) => {
                let doc = parsed.as_ref().ok_or_else(|| {
                    BodyError::NoType(format!(
                        "the body is not JSON, so {text} cannot give the type"
                    ))
                })?;
                let found = jsonpath_rust::query::js_path_process(query, doc)
                    .ok()
                    .and_then(|hits| hits.into_iter().next().map(|h| h.val().clone()));
                match found {
                    Some(Value::String(s)) if !s.is_empty() => s,
                    _ => {
                        return Err(BodyError::NoType(format!(
                            "the body has no non-empty string at {text}"
                        )));
                    }
                }
            }
        };
        let id = self
            .delivery_id(headers, parsed.as_ref())
            .unwrap_or_else(fresh_id);
        let mut event = Map::new();
        event.insert("specversion".into(), json!("1.0"));
        event.insert("id".into(), json!(id));
        event.insert("source".into(), json!(self.source));
        event.insert("type".into(), json!(ty));
        event.insert("time".into(), json!(now));
        event.insert("webhook".into(), json!(self.name));
        match (parsed, is_json_type) {
            (Some(data), true) => {
                event.insert("datacontenttype".into(), json!("application/json"));
                event.insert("data".into(), data);
            }
            _ => {
                if let Some(ct) = content_type {
                    event.insert("datacontenttype".into(), json!(ct));
                }
                match std::str::from_utf8(body) {
                    Ok(text) => event.insert("data".into(), json!(text)),
                    Err(_) => event.insert(
                        "data_base64".into(),
                        json!(base64::engine::general_purpose::STANDARD.encode(body)),
                    ),
                };
            }
        }
        Ok(Value::Object(event))
    }

    /// The provider's own id for this delivery, stable across its retries.
    fn delivery_id(&self, headers: &dyn Headers, body: Option<&Value>) -> Option<String> {
        let from_header = |name: &str| {
            headers
                .get(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        match self.verify.as_ref().map(|v| v.scheme) {
            Some(Scheme::Stripe) => body
                .and_then(|b| b.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => from_header("webhook-id")
                .or_else(|| from_header("x-github-delivery"))
                .or_else(|| from_header("idempotency-key")),
        }
    }
}

/// Why a webhook body cannot become an event.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum BodyError {
    /// The type is not where `type_from` says.
    #[error("{0}")]
    NoType(String),
    #[error(transparent)]
    Structure(#[from] StructureError),
}

/// Why a delivery to a webhook is refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refused {
    /// The signature does not verify (or is missing): the delivery is not the provider's.
    #[error("the {scheme} signature does not verify: {why}")]
    Signature { scheme: &'static str, why: String },
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The wrapped event is not one a bus takes (too large, say).
    #[error(transparent)]
    Event(#[from] EventError),
}

impl Webhook {
    /// A delivery received at `now_ms`: verified, then wrapped and parsed into the event
    /// its bus takes (`id`: the provider's delivery id, else a fresh one).
    pub fn accept(
        &self,
        headers: &dyn Headers,
        body: &[u8],
        now_ms: i64,
        limits: &Limits,
    ) -> Result<CloudEvent, Refused> {
        self.verify(headers, body, now_ms.div_euclid(1000))
            .map_err(|why| Refused::Signature {
                scheme: self.verify.as_ref().map_or("", |v| v.scheme.as_str()),
                why,
            })?;
        let event = self.event(headers, body, &format_ms(now_ms), fresh_id)?;
        let json = serde_json::to_vec(&event).map_err(|e| EventError::NotAnObject {
            reason: e.to_string(),
        })?;
        Ok(parse_structured(&json, limits)?)
    }
}

/// A random event id for deliveries that bring none.
fn fresh_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source: fall back on the clock and a counter, still unique here.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return format!("wh-{}-{n}", switchyard_core::time::now_ms());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
