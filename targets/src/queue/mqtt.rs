//! The `mqtt` target: publish at QoS 0 or 1 (waiting for the broker's PUBACK at QoS 1).
//! MQTT 3.1.1 has no headers, so the event travels in structured mode: the CloudEvent JSON
//! (or the transformed payload) is the message.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{Mutex, oneshot};

use super::{body, check_host};
use crate::{AddressPolicy, Delivered, Delivery, DeliveryError, Target};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:1883`
    pub url: String,
    pub topic: String,
    /// 0 or 1 (default 1).
    #[serde(default = "one")]
    pub qos: u8,
}

fn one() -> u8 {
    1
}

impl MqttConfig {
    pub fn parse(value: &Value) -> Result<MqttConfig, String> {
        let c: MqttConfig =
            serde_json::from_value(value.clone()).map_err(|e| format!("mqtt: {e}"))?;
        host_port(&c.url)
            .ok_or_else(|| format!("mqtt.url {:?} must look like mqtt://host:port", c.url))?;
        if c.topic.is_empty() || c.topic.contains(['+', '#']) {
            return Err("mqtt.topic must be a topic name without wildcards".to_owned());
        }
        if c.qos > 1 {
            return Err("mqtt.qos must be 0 or 1".to_owned());
        }
        Ok(c)
    }
}

fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))?;
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, 1883),
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// How long a delivery waits for its publish to go out (QoS 0) or be acknowledged (QoS 1),
/// connecting included.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

type Waiter = oneshot::Sender<Result<(), String>>;

/// Publishes waiting for their packet id (assigned in request order), then for their ack.
#[derive(Default)]
struct Waiters {
    unsent: VecDeque<(QoS, Waiter)>,
    unacked: HashMap<u16, Waiter>,
}

impl Waiters {
    fn fail_all(&mut self, why: &str) {
        for (_, w) in self.unsent.drain(..) {
            let _ = w.send(Err(why.to_owned()));
        }
        for (_, w) in self.unacked.drain() {
            let _ = w.send(Err(why.to_owned()));
        }
    }
}

struct Link {
    client: AsyncClient,
    waiters: Arc<Mutex<Waiters>>,
}

pub struct MqttTarget {
    config: MqttConfig,
    policy: AddressPolicy,
    link: Mutex<Option<Link>>,
}

impl MqttTarget {
    pub fn new(config: MqttConfig, policy: AddressPolicy) -> Self {
        MqttTarget {
            config,
            policy,
            link: Mutex::new(None),
        }
    }

    async fn link(&self) -> Result<(AsyncClient, Arc<Mutex<Waiters>>), DeliveryError> {
        let mut slot = self.link.lock().await;
        if let Some(l) = slot.as_ref() {
            return Ok((l.client.clone(), l.waiters.clone()));
        }
        let (host, port) = host_port(&self.config.url).ok_or_else(|| {
            DeliveryError::permanent(format!("bad mqtt url {:?}", self.config.url))
        })?;
        check_host(&self.policy, &host, port).await?;
        let id = format!("switchyard-{:08x}", fastrand::u32(..));
        let mut options = MqttOptions::new(id, host, port);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let waiters: Arc<Mutex<Waiters>> = Arc::default();
        let watched = Arc::downgrade(&waiters);
        tokio::spawn(async move {
            loop {
                let polled = eventloop.poll().await;
                // The target is gone: stop driving its connection.
                let Some(waiters) = watched.upgrade() else {
                    return;
                };
                let mut w = waiters.lock().await;
                match polled {
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some((qos, waiter)) = w.unsent.pop_front() {
                            if qos == QoS::AtMostOnce {
                                let _ = waiter.send(Ok(()));
                            } else {
                                w.unacked.insert(pkid, waiter);
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(waiter) = w.unacked.remove(&ack.pkid) {
                            let _ = waiter.send(Ok(()));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        w.fail_all(&format!("mqtt connection: {e}"));
                        drop(w);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        *slot = Some(Link {
            client: client.clone(),
            waiters: waiters.clone(),
        });
        Ok((client, waiters))
    }
}

#[async_trait]
impl Target for MqttTarget {
    async fn deliver(&self, d: Delivery<'_>) -> Result<Delivered, DeliveryError> {
        let (client, waiters) = self.link().await?;
        let qos = if self.config.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let (tx, rx) = oneshot::channel();
        {
            // Hold the lock while queueing the request, so waiters and requests keep one order.
            let mut w = waiters.lock().await;
            w.unsent.push_back((qos, tx));
            if let Err(e) = client
                .publish(self.config.topic.clone(), qos, false, body(&d))
                .await
            {
                w.unsent.pop_back();
                return Err(DeliveryError::retryable(format!("mqtt publish: {e}")));
            }
        }
        match tokio::time::timeout(ACK_TIMEOUT, rx).await {
            Ok(Ok(Ok(()))) => Ok(Delivered {
                status: None,
                output: None,
            }),
            Ok(Ok(Err(e))) => Err(DeliveryError::retryable(e)),
            Ok(Err(_)) => Err(DeliveryError::retryable("mqtt connection closed")),
            Err(_) => Err(DeliveryError::retryable(
                "no PUBACK from the mqtt broker within 10 s",
            )),
        }
    }
}
