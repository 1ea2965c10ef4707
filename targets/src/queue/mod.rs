//! Queue targets: the event (or its transformed payload) published to a message system, with
//! the CloudEvents attributes as headers or fields where the protocol has them. Each target
//! connects on first use, keeps the connection, and reconnects after a failure.

pub mod amqp;
pub mod mqtt;
pub mod nats;
pub mod redis;

use std::time::Duration;

use serde_json::Value;

use crate::{AddressPolicy, Delivery, DeliveryError};

/// How long a queue target waits for its server to accept a connection before the delivery
/// fails (retryably). One attempt only: retrying is the retry policy's job.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The body to publish: the event as published, or the transformed payload.
pub(crate) fn body(d: &Delivery<'_>) -> Vec<u8> {
    match d.payload {
        None => d.event_json.to_vec(),
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(other) => other.to_string().into_bytes(),
    }
}

/// The content type of what [`body`] publishes: the event's `datacontenttype` (if any) for
/// the event, else the transformed payload's by its shape, as the `http` target labels it.
pub(crate) fn content_type(d: &Delivery<'_>) -> Option<String> {
    match d.payload {
        None => d
            .event
            .get("datacontenttype")
            .and_then(Value::as_str)
            .map(str::to_owned),
        Some(Value::String(_)) => Some("text/plain; charset=utf-8".to_owned()),
        Some(_) => Some("application/json".to_owned()),
    }
}

/// `(name, value)` of the event's string-able attributes, for headers or fields; the
/// `traceparent` is the delivery's trace context.
pub(crate) fn attributes(d: &crate::Delivery<'_>) -> Vec<(String, String)> {
    let Some(obj) = d.event.as_object() else {
        return Vec::new();
    };
    let mut attrs: Vec<(String, String)> = obj
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "data" | "data_base64" | "traceparent"))
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k.clone(), s.clone())),
            Value::Bool(_) | Value::Number(_) => Some((k.clone(), v.to_string())),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        })
        .collect();
    if let Some(tp) = d.traceparent {
        attrs.push(("traceparent".to_owned(), tp.to_owned()));
    }
    attrs
}

/// Refuses a server whose address the outbound policy does not allow.
pub(crate) async fn check_host(
    policy: &AddressPolicy,
    host: &str,
    port: u16,
) -> Result<(), DeliveryError> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| DeliveryError::retryable(format!("resolving {host}: {e}")))?;
    for addr in addrs {
        policy.check(addr.ip()).map_err(DeliveryError::permanent)?;
    }
    Ok(())
}
