//! The `nats` target: core publish (flushed), or JetStream publish waiting for the stream's
//! ack. CloudEvents attributes travel as `ce-<name>` headers (the CloudEvents NATS binding),
//! the delivery id as `Nats-Msg-Id`, and the content type (the event's `datacontenttype`, or
//! the transformed payload's) as `content-type`.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{CONNECT_TIMEOUT, attributes, body, check_host, content_type};
use crate::{AddressPolicy, Delivered, Delivery, DeliveryError, Target};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// `nats://host:port`
    pub url: String,
    pub subject: String,
    /// Publish through JetStream and wait for the stream's acknowledgement.
    #[serde(default)]
    pub jetstream: bool,
}

impl NatsConfig {
    pub fn parse(value: &Value) -> Result<NatsConfig, String> {
        let c: NatsConfig =
            serde_json::from_value(value.clone()).map_err(|e| format!("nats: {e}"))?;
        host_port(&c.url)
            .ok_or_else(|| format!("nats.url {:?} must look like nats://host:port", c.url))?;
        if c.subject.is_empty() || c.subject.contains(' ') {
            return Err("nats.subject must be a non-empty subject without spaces".to_owned());
        }
        Ok(c)
    }
}

fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))?;
    let authority = rest.split('/').next()?.rsplit('@').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, 4222),
    };
    (!host.is_empty()).then(|| {
        (
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        )
    })
}

pub struct NatsTarget {
    config: NatsConfig,
    policy: AddressPolicy,
    client: Mutex<Option<async_nats::Client>>,
}

impl NatsTarget {
    pub fn new(config: NatsConfig, policy: AddressPolicy) -> Self {
        NatsTarget {
            config,
            policy,
            client: Mutex::new(None),
        }
    }

    async fn client(&self) -> Result<async_nats::Client, DeliveryError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        if let Some((host, port)) = host_port(&self.config.url) {
            check_host(&self.policy, &host, port).await?;
        }
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(self.config.url.as_str())
            .await
            .map_err(|e| DeliveryError::retryable(format!("connecting to nats: {e}")))?;
        *slot = Some(client.clone());
        Ok(client)
    }
}

#[async_trait]
impl Target for NatsTarget {
    async fn deliver(&self, d: Delivery<'_>) -> Result<Delivered, DeliveryError> {
        let client = self.client().await?;
        let mut headers = async_nats::HeaderMap::new();
        for (k, v) in attributes(&d) {
            if k != "datacontenttype" {
                headers.insert(format!("ce-{k}").as_str(), v.as_str());
            }
        }
        // A transformed payload is labelled by its own type, not the event's data's.
        if let Some(ct) = content_type(&d) {
            headers.insert("content-type", ct.as_str());
        }
        headers.insert("Nats-Msg-Id", d.delivery_id);
        let subject = self.config.subject.clone();
        let payload = body(&d).into();
        if self.config.jetstream {
            let js = async_nats::jetstream::new(client);
            let ack = js
                .publish_with_headers(subject, headers, payload)
                .await
                .map_err(|e| DeliveryError::retryable(format!("jetstream publish: {e}")))?;
            ack.await
                .map_err(|e| DeliveryError::retryable(format!("jetstream ack: {e}")))?;
        } else {
            client
                .publish_with_headers(subject, headers, payload)
                .await
                .map_err(|e| DeliveryError::retryable(format!("nats publish: {e}")))?;
            client
                .flush()
                .await
                .map_err(|e| DeliveryError::retryable(format!("nats flush: {e}")))?;
        }
        Ok(Delivered {
            status: None,
            output: None,
        })
    }
}
