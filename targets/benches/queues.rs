//! Deliveries per second of each queue target to its local server, 64 in flight, the way a
//! subscription's worker drives it. `cargo bench -p switchyard-targets --bench queues`
//! (`QUEUE_BENCH_EVENTS`, default 50,000 per target). Needs the servers scripts/services.sh
//! starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use switchyard_targets::queue::amqp::{AmqpConfig, AmqpTarget};
use switchyard_targets::queue::mqtt::{MqttConfig, MqttTarget};
use switchyard_targets::queue::nats::{NatsConfig, NatsTarget};
use switchyard_targets::queue::redis::{RedisConfig, RedisTarget};
use switchyard_targets::{AddressPolicy, Delivery, Target};

const IN_FLIGHT: usize = 64;

async fn run(name: &str, target: Arc<dyn Target>, events: usize) {
    let event: Arc<Value> = Arc::new(
        json!({"specversion": "1.0", "id": "b", "source": "/bench", "type": "bench.event",
        "datacontenttype": "application/json", "data": {"order": 1, "note": "x".repeat(700)}}),
    );
    let json = Arc::new(serde_json::to_vec(event.as_ref()).unwrap());
    let start = Instant::now();
    let per_task = events / IN_FLIGHT;
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|t| {
            let (target, event, json) = (target.clone(), event.clone(), json.clone());
            tokio::spawn(async move {
                for i in 0..per_task {
                    let id = format!("bench:{t}:{i}");
                    target
                        .deliver(Delivery {
                            event_json: &json,
                            event: &event,
                            payload: None,
                            delivery_id: &id,
                            attempt: 1,
                            traceparent: None,
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let n = per_task * IN_FLIGHT;
    println!(
        "{name}: {n} deliveries in {:.2} s: {:.0} deliveries/s",
        start.elapsed().as_secs_f64(),
        n as f64 / start.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::var("QUEUE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let policy = AddressPolicy {
        allow: vec!["127.0.0.0/8".parse().unwrap()],
    };
    let pid = std::process::id();
    let nats = NatsConfig::parse(
        &json!({"url": "nats://127.0.0.1:4222", "subject": format!("bench.{pid}")}),
    )
    .unwrap();
    run(
        "nats (core, flushed)",
        Arc::new(NatsTarget::new(nats, policy.clone())),
        events,
    )
    .await;
    let redis = RedisConfig::parse(&json!({"url": "redis://127.0.0.1:6379", "stream": format!("bench-{pid}"), "maxlen": 10000})).unwrap();
    run(
        "redis (XADD)",
        Arc::new(RedisTarget::new(redis, policy.clone())),
        events,
    )
    .await;
    let amqp_url = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let amqp =
        AmqpConfig::parse(&json!({"url": amqp_url, "routing_key": format!("no-such-queue-{pid}")}))
            .unwrap();
    run(
        "amqp (confirms, unroutable: dropped by the broker)",
        Arc::new(AmqpTarget::new(amqp, policy.clone())),
        events,
    )
    .await;
    let mqtt = MqttConfig::parse(
        &json!({"url": "mqtt://127.0.0.1:1883", "topic": format!("bench/{pid}"), "qos": 1}),
    )
    .unwrap();
    run(
        "mqtt (QoS 1)",
        Arc::new(MqttTarget::new(mqtt, policy)),
        events,
    )
    .await;
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("bench-{pid}"))
        .query_async(&mut conn)
        .await
        .unwrap();
}
