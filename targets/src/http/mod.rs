//! The `http` target: POSTs (or any method) CloudEvents to a URL, structured or binary,
//! optionally signed with Standard Webhooks headers.

mod config;
mod resolve;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde_json::Value;
use switchyard_core::signature::Signature;

pub use config::{ContentMode, HttpConfig};

use crate::{AddressPolicy, Delivered, Delivery, DeliveryError, Target};

/// Builds the HTTP client all `http` targets share: one connection pool, redirects not
/// followed, and every resolved address checked against `policy`.
pub fn client(policy: AddressPolicy) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(resolve::SafeResolver::new(policy)))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

pub struct HttpTarget {
    config: HttpConfig,
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl HttpTarget {
    pub fn new(config: HttpConfig, client: reqwest::Client, policy: AddressPolicy) -> Self {
        HttpTarget {
            config,
            client,
            policy,
        }
    }

    /// Body and content type for this delivery.
    fn body(&self, d: &Delivery<'_>) -> (Vec<u8>, Option<String>) {
        if let Some(payload) = d.payload {
            return payload_body(payload);
        }
        match self.config.content_mode {
            ContentMode::Structured => (
                d.event_json.to_vec(),
                Some("application/cloudevents+json".to_owned()),
            ),
            ContentMode::Binary => {
                let ct = d
                    .event
                    .get("datacontenttype")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let body = match (d.event.get("data"), d.event.get("data_base64")) {
                    (Some(Value::String(s)), _) if !ct.as_deref().is_some_and(is_json) => {
                        s.as_bytes().to_vec()
                    }
                    (Some(data), _) => data.to_string().into_bytes(),
                    (None, Some(Value::String(b64))) => base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap_or_default(),
                    (None, _) => Vec::new(),
                };
                (body, ct)
            }
        }
    }
}

fn is_json(media: &str) -> bool {
    let m = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    m == "application/json" || m.ends_with("+json")
}

/// A transformed payload: strings travel as text, anything else as JSON.
fn payload_body(payload: &Value) -> (Vec<u8>, Option<String>) {
    match payload {
        Value::String(s) => (
            s.as_bytes().to_vec(),
            Some("text/plain; charset=utf-8".to_owned()),
        ),
        other => (
            other.to_string().into_bytes(),
            Some("application/json".to_owned()),
        ),
    }
}

/// `ce-*` headers for binary mode: every attribute but the data members and content type.
fn binary_headers(event: &Value) -> Vec<(String, String)> {
    let Some(obj) = event.as_object() else {
        return Vec::new();
    };
    obj.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "data" | "data_base64" | "datacontenttype"))
        .filter_map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Bool(_) | Value::Number(_) => v.to_string(),
                Value::Null | Value::Array(_) | Value::Object(_) => return None,
            };
            let encoded = percent_encode_header(&text);
            Some((format!("ce-{k}"), encoded))
        })
        .collect()
}

/// The HTTP binding percent-encodes what a header cannot carry.
fn percent_encode_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' && b != b'"' || b == b' ' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl Target for HttpTarget {
    async fn deliver(&self, d: Delivery<'_>) -> Result<Delivered, DeliveryError> {
        if let Some(host) = self.config.url.host_str()
            && let Ok(ip) = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
        {
            self.policy.check(ip).map_err(DeliveryError::permanent)?;
        }
        let (body, content_type) = self.body(&d);
        let mut req = self
            .client
            .request(self.config.method.clone(), self.config.url.clone())
            .timeout(self.config.timeout);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        if self.config.content_mode == ContentMode::Binary && d.payload.is_none() {
            for (name, value) in binary_headers(d.event) {
                req = req.header(name, value);
            }
        }
        if let Some(tp) = d.traceparent
            && let Ok(v) = HeaderValue::from_str(tp)
        {
            req = req.header("traceparent", v);
        }
        if let Some(key) = &self.config.signing_key {
            let ts = (switchyard_core::time::now_ms().div_euclid(1000)).to_string();
            let signature = Signature::standard_webhooks(key, d.delivery_id, &ts, &body)
                .ok_or_else(|| DeliveryError::permanent("the signing key cannot key HMAC"))?;
            req = req
                .header("webhook-id", d.delivery_id)
                .header("webhook-timestamp", ts)
                .header("webhook-signature", signature.to_standard_webhooks_header());
        }
        for (name, value) in &self.config.headers {
            req = req.header(name, value);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| classify_send_error(&e, self.config.timeout))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(Delivered {
                status: Some(status),
                output: None,
            });
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let body = read_capped(resp, MAX_ERROR_BODY).await;
        let snippet: String = String::from_utf8_lossy(&body)
            .chars()
            .take(ERROR_SNIPPET_CHARS)
            .collect();
        let message = if snippet.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {snippet}")
        };
        let err = if status == 408 || status == 429 || status >= 500 {
            DeliveryError::retryable(message)
        } else {
            DeliveryError::permanent(message)
        };
        let err = err.with_status(status);
        Err(match retry_after {
            Some(after) => err.with_retry_after(after),
            None => err,
        })
    }
}

/// Most bytes of a failed response's body read; the rest is never read (the connection
/// is dropped), so an endless body costs nothing.
pub const MAX_ERROR_BODY: usize = 64 * 1024;
/// How much of that body the error (and so the trace and the dead letter) keeps.
pub const ERROR_SNIPPET_CHARS: usize = 1024;

/// Reads at most `cap` bytes of the body; a body that fails or times out midway yields
/// what arrived before.
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < cap {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(cap - out.len());
                out.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    out
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3); a date in the past
/// means now.
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn classify_send_error(e: &reqwest::Error, timeout: Duration) -> DeliveryError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<resolve::Refused>() {
            return DeliveryError::permanent(refused.0.clone());
        }
        source = s.source();
    }
    if e.is_timeout() {
        DeliveryError::retryable(format!("timed out after {} ms", timeout.as_millis()))
    } else if e.is_connect() {
        DeliveryError::retryable(format!("connect error: {}", root_cause(e)))
    } else {
        DeliveryError::retryable(format!("request failed: {}", root_cause(e)))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests;
