//! The `redis` target: `XADD` to a stream, the body in field `event`, the delivery id (a
//! consumer's dedup key: a retried `XADD` may have landed) in `delivery_id`, and the
//! CloudEvents attributes as `ce_<name>` fields.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{CONNECT_TIMEOUT, attributes, body, check_host};
use crate::{AddressPolicy, Delivered, Delivery, DeliveryError, Target};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port[/db]`
    pub url: String,
    pub stream: String,
    /// Trim the stream to about this many entries (`MAXLEN ~`).
    pub maxlen: Option<usize>,
}

impl RedisConfig {
    pub fn parse(value: &Value) -> Result<RedisConfig, String> {
        let c: RedisConfig =
            serde_json::from_value(value.clone()).map_err(|e| format!("redis: {e}"))?;
        redis::Client::open(c.url.as_str()).map_err(|e| format!("redis.url {:?}: {e}", c.url))?;
        if c.stream.is_empty() {
            return Err("redis.stream must not be empty".to_owned());
        }
        Ok(c)
    }
}

pub struct RedisTarget {
    config: RedisConfig,
    policy: AddressPolicy,
    conn: Mutex<Option<redis::aio::ConnectionManager>>,
}

impl RedisTarget {
    pub fn new(config: RedisConfig, policy: AddressPolicy) -> Self {
        RedisTarget {
            config,
            policy,
            conn: Mutex::new(None),
        }
    }

    async fn connection(&self) -> Result<redis::aio::ConnectionManager, DeliveryError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let client = redis::Client::open(self.config.url.as_str())
            .map_err(|e| DeliveryError::permanent(e.to_string()))?;
        let info = client.get_connection_info();
        if let redis::ConnectionAddr::Tcp(host, port)
        | redis::ConnectionAddr::TcpTls { host, port, .. } = info.addr()
        {
            check_host(&self.policy, host, *port).await?;
        }
        // One attempt, bounded: the manager's own backoff (six retries by default) would
        // hold a delivery for seconds and duplicate the retry policy's job.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(0);
        let conn = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| DeliveryError::retryable(format!("connecting to redis: {e}")))?;
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

#[async_trait]
impl Target for RedisTarget {
    async fn deliver(&self, d: Delivery<'_>) -> Result<Delivered, DeliveryError> {
        let mut conn = self.connection().await?;
        let mut fields: Vec<(String, Vec<u8>)> = vec![
            ("event".to_owned(), body(&d)),
            ("delivery_id".to_owned(), d.delivery_id.as_bytes().to_vec()),
        ];
        fields.extend(
            attributes(&d)
                .into_iter()
                .map(|(k, v)| (format!("ce_{k}"), v.into_bytes())),
        );
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.config.stream);
        if let Some(n) = self.config.maxlen {
            cmd.arg("MAXLEN").arg("~").arg(n);
        }
        cmd.arg("*");
        for (k, v) in &fields {
            cmd.arg(k).arg(v.as_slice());
        }
        let _id: String = cmd
            .query_async(&mut conn)
            .await
            .map_err(|e| DeliveryError::retryable(format!("redis XADD: {e}")))?;
        Ok(Delivered {
            status: None,
            output: None,
        })
    }
}
