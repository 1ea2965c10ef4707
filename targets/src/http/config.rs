//! The `http` target's settings, as written in a rule.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentMode {
    /// The whole CloudEvent as the JSON body (`application/cloudevents+json`).
    Structured,
    /// Attributes as `ce-*` headers, the data as the body.
    Binary,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpIn {
    url: String,
    method: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    timeout_ms: Option<u64>,
    content_mode: Option<ContentMode>,
    signing_secret: Option<String>,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub url: reqwest::Url,
    pub method: reqwest::Method,
    pub headers: HeaderMap,
    pub timeout: Duration,
    pub content_mode: ContentMode,
    /// The decoded Standard Webhooks key.
    pub signing_key: Option<Vec<u8>>,
}

impl HttpConfig {
    /// Parses and checks the `http` object of a target; errors name the field.
    pub fn parse(value: &Value) -> Result<HttpConfig, String> {
        let h: HttpIn = serde_json::from_value(value.clone()).map_err(|e| format!("http: {e}"))?;
        let url = reqwest::Url::parse(&h.url).map_err(|e| format!("http.url {:?}: {e}", h.url))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!(
                "http.url {:?} must be an http:// or https:// URL with a host",
                h.url
            ));
        }
        let method = match h.method.as_deref() {
            None => reqwest::Method::POST,
            Some(m) => reqwest::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("http.method {m:?} is not an HTTP method"))?,
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &h.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("http.headers: {name:?} is not a header name"))?;
            let v = HeaderValue::from_str(value)
                .map_err(|_| format!("http.headers.{name}: not a valid header value"))?;
            headers.insert(n, v);
        }
        let timeout = Duration::from_millis(h.timeout_ms.unwrap_or(5000));
        if timeout.is_zero() || timeout > Duration::from_secs(300) {
            return Err("http.timeout_ms must be between 1 and 300000".to_owned());
        }
        let signing_key = h
            .signing_secret
            .as_deref()
            .map(|s| {
                switchyard_core::signature::standard_webhooks_key(s).ok_or_else(|| {
                    "http.signing_secret must be whsec_ followed by base64".to_owned()
                })
            })
            .transpose()?;
        Ok(HttpConfig {
            url,
            method,
            headers,
            timeout,
            content_mode: h.content_mode.unwrap_or(ContentMode::Structured),
            signing_key,
        })
    }
}
