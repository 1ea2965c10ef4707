//! The `mqtt` target against the Mosquitto broker on 127.0.0.1:1883.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use switchyard_targets::queue::mqtt::{MqttConfig, MqttTarget};
use switchyard_targets::{AddressPolicy, Target};
use tokio::sync::mpsc;

use crate::contract::{self, Carries, READ_DEADLINE, Received, Sample, loopback, unique};

const ADDR: &str = "127.0.0.1:1883";

fn target(url: &str, topic: &str, qos: u8, policy: AddressPolicy) -> Arc<dyn Target> {
    let config = MqttConfig::parse(&json!({"url": url, "topic": topic, "qos": qos})).unwrap();
    Arc::new(MqttTarget::new(config, policy))
}

/// A subscriber on a fresh topic; MQTT 3.1.1 carries neither the delivery id nor a
/// content type, so only the body arrives. `qos` is the target's (and the subscription's).
struct Mqtt {
    qos: u8,
}

struct Topic {
    topic: String,
    qos: u8,
    arrived: mpsc::UnboundedReceiver<rumqttc::Publish>,
    subscriber: AsyncClient,
}

/// Subscribes to `topic` and returns once the broker confirmed it; a task keeps polling
/// the connection and forwards what arrives.
async fn subscribe(
    topic: &str,
    qos: QoS,
) -> (AsyncClient, mpsc::UnboundedReceiver<rumqttc::Publish>) {
    let mut options = MqttOptions::new(unique("sy-sub"), "127.0.0.1", 1883);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(options, 64);
    client.subscribe(topic, qos).await.unwrap();
    loop {
        match tokio::time::timeout(READ_DEADLINE, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("Mosquitto must run on {ADDR}: {e}"),
            Err(_) => panic!("Mosquitto must run on {ADDR}: no answer"),
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event
                && tx.send(p).is_err()
            {
                return;
            }
        }
    });
    (client, rx)
}

impl contract::Harness for Mqtt {
    type Destination = Topic;

    fn carries(&self) -> Carries {
        Carries {
            delivery_id: false,
            event_content_type: None,
        }
    }

    async fn destination(&self) -> Topic {
        let topic = unique("sy/contract");
        let qos = if self.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let (subscriber, arrived) = subscribe(&topic, qos).await;
        Topic {
            topic,
            qos: self.qos,
            arrived,
            subscriber,
        }
    }

    fn unreachable(&self, port: u16) -> (Arc<dyn Target>, Duration) {
        let url = format!("mqtt://127.0.0.1:{port}");
        (
            target(&url, "sy/unreachable", self.qos, loopback()),
            switchyard_targets::queue::mqtt::ACK_TIMEOUT,
        )
    }
}

impl contract::Destination for Topic {
    fn target(&self, policy: AddressPolicy) -> Arc<dyn Target> {
        target(&format!("mqtt://{ADDR}"), &self.topic, self.qos, policy)
    }

    async fn next(&mut self, n: usize) -> Vec<Received> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let p = tokio::time::timeout(READ_DEADLINE, self.arrived.recv())
                .await
                .unwrap_or_else(|_| panic!("{}: {} of {n} messages arrived", self.topic, got.len()))
                .expect("the subscriber runs");
            assert_eq!(p.topic, self.topic);
            got.push(Received {
                body: p.payload.to_vec(),
                delivery_id: None,
                content_type: None,
            });
        }
        got
    }

    async fn finish(self) {
        let _ = self.subscriber.disconnect().await;
    }
}

#[tokio::test]
async fn meets_the_contract_at_qos_1() {
    contract::run(&Mqtt { qos: 1 }).await;
}

#[tokio::test]
async fn meets_the_contract_at_qos_0() {
    contract::run(&Mqtt { qos: 0 }).await;
}

/// Beyond the contract: the message is published at the configured QoS.
#[tokio::test]
async fn publishes_at_the_configured_qos() {
    use contract::{Destination as _, Harness as _};
    for (qos, expected) in [(0, QoS::AtMostOnce), (1, QoS::AtLeastOnce)] {
        let mut topic = Mqtt { qos }.destination().await;
        let sample = Sample::new(&unique("qos"), 1);
        topic
            .target(loopback())
            .deliver(sample.delivery(None))
            .await
            .unwrap();
        let p = tokio::time::timeout(READ_DEADLINE, topic.arrived.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.qos, expected, "qos {qos}");
        assert!(!p.retain);
        topic.finish().await;
    }
}

#[test]
fn bad_configs_are_refused() {
    let parse = |v: Value| MqttConfig::parse(&v);
    assert!(parse(json!({"url": "mqtt://h:1883", "topic": "a/#"})).is_err());
    assert!(parse(json!({"url": "mqtt://h:1883", "topic": "a/+/b"})).is_err());
    assert!(parse(json!({"url": "mqtt://h:1883", "topic": "a", "qos": 2})).is_err());
    assert!(parse(json!({"url": "http://h:1883", "topic": "a"})).is_err());
}
