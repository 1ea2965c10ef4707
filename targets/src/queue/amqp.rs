//! The `amqp` target: publish to an exchange with a routing key on a channel in confirm mode,
//! waiting for the broker's ack. CloudEvents attributes travel as `cloudEvents:<name>`
//! application properties (the CloudEvents AMQP binding), `datacontenttype` as the content
//! type.

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{CONNECT_TIMEOUT, attributes, body, check_host, content_type};
use crate::{AddressPolicy, Delivered, Delivery, DeliveryError, Target};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// `amqp://user:password@host:5672/vhost`
    pub url: String,
    /// The exchange; empty for the default exchange (routing key = queue name).
    #[serde(default)]
    pub exchange: String,
    pub routing_key: String,
}

impl AmqpConfig {
    pub fn parse(value: &Value) -> Result<AmqpConfig, String> {
        let c: AmqpConfig =
            serde_json::from_value(value.clone()).map_err(|e| format!("amqp: {e}"))?;
        c.url
            .parse::<lapin::uri::AMQPUri>()
            .map_err(|e| format!("amqp.url {:?}: {e}", c.url))?;
        Ok(c)
    }
}

pub struct AmqpTarget {
    config: AmqpConfig,
    policy: AddressPolicy,
    /// The connection must outlive its channel; both are replaced after a failure.
    link: Mutex<Option<(Connection, lapin::Channel)>>,
}

impl AmqpTarget {
    pub fn new(config: AmqpConfig, policy: AddressPolicy) -> Self {
        AmqpTarget {
            config,
            policy,
            link: Mutex::new(None),
        }
    }

    async fn channel(&self) -> Result<lapin::Channel, DeliveryError> {
        let mut slot = self.link.lock().await;
        if let Some((conn, ch)) = slot.as_ref()
            && conn.status().connected()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        let uri: lapin::uri::AMQPUri = self
            .config
            .url
            .parse()
            .map_err(|e: String| DeliveryError::permanent(e))?;
        check_host(&self.policy, &uri.authority.host, uri.authority.port).await?;
        // lapin has no connect timeout of its own: a server that never answers (a dropped
        // SYN, a half-open proxy) would hold the delivery for as long as the OS lets it.
        let (conn, ch) = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let conn = Connection::connect(&self.config.url, ConnectionProperties::default())
                .await
                .map_err(|e| DeliveryError::retryable(format!("connecting to amqp: {e}")))?;
            let ch = conn
                .create_channel()
                .await
                .map_err(|e| DeliveryError::retryable(format!("opening an amqp channel: {e}")))?;
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| DeliveryError::retryable(format!("amqp confirm mode: {e}")))?;
            Ok::<_, DeliveryError>((conn, ch))
        })
        .await
        .map_err(|_| {
            DeliveryError::retryable(format!(
                "connecting to amqp: no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })??;
        *slot = Some((conn, ch.clone()));
        Ok(ch)
    }
}

#[async_trait]
impl Target for AmqpTarget {
    async fn deliver(&self, d: Delivery<'_>) -> Result<Delivered, DeliveryError> {
        let ch = self.channel().await?;
        let mut headers = FieldTable::default();
        for (k, v) in attributes(&d) {
            if k != "datacontenttype" {
                headers.insert(
                    ShortString::from(format!("cloudEvents:{k}")),
                    AMQPValue::LongString(v.into()),
                );
            }
        }
        let content_type =
            content_type(&d).unwrap_or_else(|| "application/cloudevents+json".to_owned());
        let properties = BasicProperties::default()
            .with_content_type(ShortString::from(content_type))
            .with_message_id(ShortString::from(d.delivery_id.to_owned()))
            .with_delivery_mode(2)
            .with_headers(headers);
        let failed = |e: lapin::Error| DeliveryError::retryable(format!("amqp publish: {e}"));
        let confirm = ch
            .basic_publish(
                ShortString::from(self.config.exchange.clone()),
                ShortString::from(self.config.routing_key.clone()),
                BasicPublishOptions::default(),
                &body(&d),
                properties,
            )
            .await
            .map_err(failed)?
            .await
            .map_err(failed)?;
        match confirm {
            Confirmation::Ack(_) | Confirmation::NotRequested => Ok(Delivered {
                status: None,
                output: None,
            }),
            Confirmation::Nack(_) => Err(DeliveryError::retryable(
                "the broker did not accept the message (nack)",
            )),
        }
    }
}
