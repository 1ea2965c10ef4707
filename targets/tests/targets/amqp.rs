//! The `amqp` target against the RabbitMQ server on 127.0.0.1:5672 (guest/guest).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Value, json};
use switchyard_targets::queue::amqp::{AmqpConfig, AmqpTarget};
use switchyard_targets::{AddressPolicy, Target};

use crate::contract::{self, Carries, READ_DEADLINE, Received, Sample, loopback, unique};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn target(url: &str, queue: &str, policy: AddressPolicy) -> Arc<dyn Target> {
    let config = AmqpConfig::parse(&json!({"url": url, "routing_key": queue})).unwrap();
    Arc::new(AmqpTarget::new(config, policy))
}

/// A fresh queue on the default exchange (routing key = queue name), consumed as it fills.
struct Amqp;

struct Queue {
    name: String,
    channel: lapin::Channel,
    consumer: lapin::Consumer,
    /// Keeps the channel's connection open.
    _conn: lapin::Connection,
}

impl contract::Harness for Amqp {
    type Destination = Queue;

    fn carries(&self) -> Carries {
        Carries {
            // `message_id`.
            delivery_id: true,
            // The event's `datacontenttype` (else `application/cloudevents+json`).
            event_content_type: Some("application/json"),
        }
    }

    async fn destination(&self) -> Queue {
        let conn = lapin::Connection::connect(URL, lapin::ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("RabbitMQ must run on 127.0.0.1:5672 (guest/guest): {e}"));
        let channel = conn.create_channel().await.unwrap();
        let name = unique("sy-contract");
        // A queue left behind by a failed test goes away once unused for ten minutes.
        let mut arguments = FieldTable::default();
        arguments.insert("x-expires".into(), AMQPValue::LongInt(600_000));
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::default(),
                arguments,
            )
            .await
            .unwrap();
        let consumer = channel
            .basic_consume(
                name.as_str().into(),
                "contract".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Queue {
            name,
            channel,
            consumer,
            _conn: conn,
        }
    }

    fn unreachable(&self, port: u16) -> (Arc<dyn Target>, Duration) {
        let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
        (
            target(&url, "unreachable", loopback()),
            switchyard_targets::queue::CONNECT_TIMEOUT,
        )
    }
}

fn received(d: &lapin::message::Delivery) -> Received {
    let p = &d.properties;
    Received {
        body: d.data.clone(),
        delivery_id: p.message_id().as_ref().map(|s| s.to_string()),
        content_type: p.content_type().as_ref().map(|s| s.to_string()),
    }
}

impl contract::Destination for Queue {
    fn target(&self, policy: AddressPolicy) -> Arc<dyn Target> {
        target(URL, &self.name, policy)
    }

    async fn next(&mut self, n: usize) -> Vec<Received> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let d = tokio::time::timeout(READ_DEADLINE, self.consumer.next())
                .await
                .unwrap_or_else(|_| panic!("{}: {} of {n} messages arrived", self.name, got.len()))
                .expect("the consumer is open")
                .unwrap();
            got.push(received(&d));
        }
        got
    }

    async fn finish(self) {
        self.channel
            .queue_delete(self.name.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn meets_the_contract() {
    contract::run(&Amqp).await;
}

/// Beyond the contract: messages are persistent, and the CloudEvents attributes travel as
/// `cloudEvents:*` headers.
#[tokio::test]
async fn persistent_with_cloudevents_headers() {
    use contract::{Destination as _, Harness as _};
    let mut queue = Amqp.destination().await;
    let run = unique("headers");
    let sample = Sample::new(&run, 3);
    queue
        .target(loopback())
        .deliver(sample.delivery(None))
        .await
        .unwrap();
    let d = tokio::time::timeout(READ_DEADLINE, queue.consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let p = &d.properties;
    assert_eq!(*p.delivery_mode(), Some(2));
    let headers = p.headers().as_ref().unwrap();
    let header = |k: &str| match headers.inner().get(k) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(header("cloudEvents:id"), format!("{run}-3"));
    assert_eq!(header("cloudEvents:source"), "/contract");
    assert_eq!(header("cloudEvents:type"), "order.created");
    assert!(!headers.inner().contains_key("cloudEvents:datacontenttype"));
    queue.finish().await;
}

#[test]
fn bad_configs_are_refused() {
    let parse = |v: Value| AmqpConfig::parse(&v);
    assert!(parse(json!({"url": "nope", "routing_key": "x"})).is_err());
    assert!(parse(json!({"url": URL})).is_err());
}
