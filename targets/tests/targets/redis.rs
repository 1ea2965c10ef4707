//! The `redis` target against the Redis server on 127.0.0.1:6379.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_targets::queue::redis::{RedisConfig, RedisTarget};
use switchyard_targets::{AddressPolicy, Target};

use crate::contract::{self, Carries, READ_DEADLINE, Received, Sample, loopback, unique};

const URL: &str = "redis://127.0.0.1:6379";

async fn connect() -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis must run on {URL}: {e}"))
}

fn target(
    url: &str,
    stream: &str,
    maxlen: Option<usize>,
    policy: AddressPolicy,
) -> Arc<dyn Target> {
    let config =
        RedisConfig::parse(&json!({"url": url, "stream": stream, "maxlen": maxlen})).unwrap();
    Arc::new(RedisTarget::new(config, policy))
}

type Entry = (String, BTreeMap<String, Vec<u8>>);

/// A fresh stream key, read back with `XREAD` from the last entry seen.
struct Redis;

struct Stream {
    key: String,
    conn: ::redis::aio::MultiplexedConnection,
    last_id: String,
}

impl Stream {
    /// Entries after the last one seen, waiting up to `block` for the first.
    async fn read(&mut self, count: usize, block: Duration) -> Vec<Entry> {
        let reply: Option<Vec<(String, Vec<Entry>)>> = ::redis::cmd("XREAD")
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(&self.last_id)
            .query_async(&mut self.conn)
            .await
            .unwrap();
        let entries: Vec<Entry> = reply
            .into_iter()
            .flatten()
            .flat_map(|(_, entries)| entries)
            .collect();
        if let Some((id, _)) = entries.last() {
            self.last_id = id.clone();
        }
        entries
    }
}

impl contract::Harness for Redis {
    type Destination = Stream;

    fn carries(&self) -> Carries {
        Carries {
            // The `delivery_id` field.
            delivery_id: true,
            // Stream entries have no content type (`ce_datacontenttype` is the event's).
            event_content_type: None,
        }
    }

    async fn destination(&self) -> Stream {
        Stream {
            key: unique("sy-contract"),
            conn: connect().await,
            last_id: "0".to_owned(),
        }
    }

    fn unreachable(&self, port: u16) -> (Arc<dyn Target>, Duration) {
        let url = format!("redis://127.0.0.1:{port}");
        (
            target(&url, "unreachable", None, loopback()),
            switchyard_targets::queue::CONNECT_TIMEOUT,
        )
    }
}

impl contract::Destination for Stream {
    fn target(&self, policy: AddressPolicy) -> Arc<dyn Target> {
        target(URL, &self.key, None, policy)
    }

    async fn next(&mut self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + READ_DEADLINE;
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "{}: {} of {n} entries arrived",
                self.key,
                got.len()
            );
            for (_, fields) in self.read(n - got.len(), left).await {
                got.push(Received {
                    body: fields["event"].clone(),
                    delivery_id: fields
                        .get("delivery_id")
                        .map(|v| String::from_utf8(v.clone()).unwrap()),
                    content_type: None,
                });
            }
        }
        got
    }

    async fn finish(mut self) {
        let _: () = ::redis::cmd("DEL")
            .arg(&self.key)
            .query_async(&mut self.conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn meets_the_contract() {
    contract::run(&Redis).await;
}

/// Beyond the contract: the CloudEvents attributes travel as `ce_*` fields, and `maxlen`
/// trims the stream.
#[tokio::test]
async fn attributes_are_fields_and_maxlen_trims() {
    use contract::Harness as _;
    let mut stream = Redis.destination().await;
    let run = unique("fields");
    let target = target(URL, &stream.key, Some(10), loopback());
    let samples: Vec<Sample> = (0..1000).map(|n| Sample::new(&run, n)).collect();
    for s in &samples {
        target.deliver(s.delivery(None)).await.unwrap();
    }
    let len: usize = ::redis::cmd("XLEN")
        .arg(&stream.key)
        .query_async(&mut stream.conn)
        .await
        .unwrap();
    // `MAXLEN ~` trims whole radix-tree nodes (100 entries by default), never below 10.
    assert!((10..=110).contains(&len), "{len} entries");
    let (_, fields) = stream.read(1, Duration::from_millis(1)).await.remove(0);
    let field = |k: &str| String::from_utf8(fields[k].clone()).unwrap();
    let n = 1000 - len;
    assert_eq!(field("event"), samples[n].json);
    assert_eq!(field("ce_id"), format!("{run}-{n}"));
    assert_eq!(field("ce_type"), "order.created");
    assert_eq!(field("ce_datacontenttype"), "application/json");
    contract::Destination::finish(stream).await;
}

#[test]
fn bad_configs_are_refused() {
    let parse = |v: Value| RedisConfig::parse(&v);
    assert!(parse(json!({"url": "http://x", "stream": "s"})).is_err());
    assert!(parse(json!({"url": URL, "stream": ""})).is_err());
}
