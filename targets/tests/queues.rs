//! The queue targets against the real servers on this machine (scripts/services.sh starts
//! them): what a target delivers is read back with each system's own client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use switchyard_targets::queue::nats::{NatsConfig, NatsTarget};
use switchyard_targets::queue::redis::{RedisConfig, RedisTarget};
use switchyard_targets::{AddressPolicy, Delivery, Target};

const EVENT: &str = r#"{"specversion":"1.0","id":"q1","source":"/shop","type":"order.created","datacontenttype":"application/json","data":{"total":5}}"#;

fn loopback() -> AddressPolicy {
    AddressPolicy {
        allow: vec!["127.0.0.0/8".parse().unwrap()],
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), fastrand_u32())
}

fn fastrand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

fn delivery<'a>(event: &'a Value, payload: Option<&'a Value>) -> Delivery<'a> {
    Delivery {
        event_json: EVENT.as_bytes(),
        event,
        payload,
        delivery_id: "default:0:r:q",
        attempt: 1,
        traceparent: None,
    }
}

#[tokio::test]
async fn redis_appends_to_the_stream() {
    let stream = unique("sy-test");
    let config = RedisConfig::parse(
        &json!({"url": "redis://127.0.0.1:6379", "stream": stream, "maxlen": 1000}),
    )
    .unwrap();
    let target = RedisTarget::new(config, loopback());
    let event: Value = serde_json::from_str(EVENT).unwrap();
    target.deliver(delivery(&event, None)).await.unwrap();
    let payload = json!({"short": true});
    target
        .deliver(delivery(&event, Some(&payload)))
        .await
        .unwrap();

    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis must run on 127.0.0.1:6379");
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    let fields = |i: usize| {
        entries[i]
            .1
            .iter()
            .cloned()
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(fields(0)["event"], EVENT);
    assert_eq!(fields(0)["ce_id"], "q1");
    assert_eq!(fields(0)["ce_type"], "order.created");
    assert_eq!(fields(1)["event"], r#"{"short":true}"#);
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_refuses_internal_servers_without_an_allowance() {
    let config =
        RedisConfig::parse(&json!({"url": "redis://127.0.0.1:6379", "stream": "x"})).unwrap();
    let event: Value = serde_json::from_str(EVENT).unwrap();
    let err = RedisTarget::new(config, AddressPolicy::default())
        .deliver(delivery(&event, None))
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        err.message.contains("refused to connect to 127.0.0.1"),
        "{}",
        err.message
    );
    assert!(RedisConfig::parse(&json!({"url": "http://x", "stream": "s"})).is_err());
}

#[tokio::test]
async fn nats_core_publish_carries_cloudevents_headers() {
    let subject = unique("sy.test");
    let listener = async_nats::connect("nats://127.0.0.1:4222")
        .await
        .expect("NATS must run on 127.0.0.1:4222");
    let mut sub = listener.subscribe(subject.clone()).await.unwrap();
    listener.flush().await.unwrap();
    let config =
        NatsConfig::parse(&json!({"url": "nats://127.0.0.1:4222", "subject": subject})).unwrap();
    let event: Value = serde_json::from_str(EVENT).unwrap();
    NatsTarget::new(config, loopback())
        .deliver(delivery(&event, None))
        .await
        .unwrap();
    use futures_util::StreamExt as _;
    let msg = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.payload.as_ref(), EVENT.as_bytes());
    let headers = msg.headers.unwrap();
    assert_eq!(headers.get("ce-id").unwrap().as_str(), "q1");
    assert_eq!(headers.get("ce-source").unwrap().as_str(), "/shop");
    assert_eq!(
        headers.get("content-type").unwrap().as_str(),
        "application/json"
    );
}

#[tokio::test]
async fn nats_jetstream_publish_waits_for_the_ack() {
    let name = unique("SYTEST").replace('-', "_");
    let subject = format!("{}.events", name.to_lowercase());
    let client = async_nats::connect("nats://127.0.0.1:4222")
        .await
        .expect("NATS must run on 127.0.0.1:4222");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![subject.clone()],
        ..Default::default()
    })
    .await
    .expect("JetStream must be enabled (nats-server -js)");
    let config = NatsConfig::parse(
        &json!({"url": "nats://127.0.0.1:4222", "subject": subject, "jetstream": true}),
    )
    .unwrap();
    let target = NatsTarget::new(config, loopback());
    let event: Value = serde_json::from_str(EVENT).unwrap();
    target.deliver(delivery(&event, None)).await.unwrap();
    // The same delivery again (a retry) is deduplicated by its Nats-Msg-Id.
    target.deliver(delivery(&event, None)).await.unwrap();
    let mut stream = js.get_stream(&name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    js.delete_stream(&name).await.unwrap();
    let missing = NatsConfig::parse(&json!({"url": "nats://127.0.0.1:4222", "subject": "no.such.stream.subject", "jetstream": true})).unwrap();
    assert!(
        NatsTarget::new(missing, loopback())
            .deliver(delivery(&event, None))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn amqp_publishes_with_confirms_and_cloudevents_properties() {
    use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
    use switchyard_targets::queue::amqp::{AmqpConfig, AmqpTarget};
    let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let queue = unique("sy-test");
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ must run on 127.0.0.1:5672 (guest/guest)");
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions::default(),
        Default::default(),
    )
    .await
    .unwrap();
    let config = AmqpConfig::parse(&json!({"url": url, "routing_key": queue})).unwrap();
    let event: Value = serde_json::from_str(EVENT).unwrap();
    AmqpTarget::new(config, loopback())
        .deliver(delivery(&event, None))
        .await
        .unwrap();
    let got = ch
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message is in the queue");
    assert_eq!(got.delivery.data, EVENT.as_bytes());
    let props = &got.delivery.properties;
    assert_eq!(
        props.content_type().as_ref().unwrap().as_str(),
        "application/json"
    );
    assert_eq!(
        props.message_id().as_ref().unwrap().as_str(),
        "default:0:r:q"
    );
    let headers = props.headers().as_ref().unwrap();
    let header = |k: &str| match headers.inner().get(k) {
        Some(lapin::types::AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(header("cloudEvents:id"), "q1");
    assert_eq!(header("cloudEvents:source"), "/shop");
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert!(AmqpConfig::parse(&json!({"url": "nope", "routing_key": "x"})).is_err());
}

#[tokio::test]
async fn mqtt_publishes_at_qos_1_and_waits_for_the_ack() {
    use switchyard_targets::queue::mqtt::{MqttConfig, MqttTarget};
    let topic = unique("sy/test");
    let mut options = rumqttc::MqttOptions::new(unique("sy-sub"), "127.0.0.1", 1883);
    options.set_keep_alive(std::time::Duration::from_secs(5));
    let (sub, mut events) = rumqttc::AsyncClient::new(options, 16);
    sub.subscribe(topic.clone(), rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    // Wait until the broker confirmed the subscription.
    loop {
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), events.poll())
            .await
            .expect("Mosquitto must run on 127.0.0.1:1883")
            .expect("Mosquitto must run on 127.0.0.1:1883");
        if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) = e {
            break;
        }
    }
    let config =
        MqttConfig::parse(&json!({"url": "mqtt://127.0.0.1:1883", "topic": topic, "qos": 1}))
            .unwrap();
    let target = MqttTarget::new(config, loopback());
    let event: Value = serde_json::from_str(EVENT).unwrap();
    target.deliver(delivery(&event, None)).await.unwrap();
    let payload = json!("plain text");
    target
        .deliver(delivery(&event, Some(&payload)))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), events.poll())
            .await
            .unwrap()
            .unwrap();
        if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = e {
            assert_eq!(p.topic, topic);
            got.push(p.payload.to_vec());
        }
    }
    assert_eq!(got, [EVENT.as_bytes().to_vec(), b"plain text".to_vec()]);
    assert!(MqttConfig::parse(&json!({"url": "mqtt://h:1883", "topic": "a/#"})).is_err());
    assert!(MqttConfig::parse(&json!({"url": "mqtt://h:1883", "topic": "a", "qos": 2})).is_err());
}
